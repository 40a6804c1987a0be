"""The corrections dictionary: what ASR writes for a Singlish word ("voila" → "walao").

A rule rewrites whole words and phrases, case-insensitively, longest phrase first. Between the
words of a phrase any run of spaces, commas, hyphens or dashes matches (ASR punctuation is
arbitrary), but not a sentence end: "cheap, buy" matches "cheap buy", "cheap. Buy" does not.

A rule may also say where it applies, for renderings that are ordinary English elsewhere:
``clause_end`` (the phrase closes a clause: "cure law." but not "law school"), ``clause_start``,
``question_end`` (a question mark follows: "cannot?" is "can or not?"), and ``not_after`` (the
word before vetoes it: "the law."). ``not_written`` lists spellings, case kept, that veto it
("LA" is Los Angeles, not "la"). A rule with ``verify`` ("there" → "leh" at a clause end) fires
only where the second listen of :mod:`services.singlish.verification` confirmed it
(``confirmed``): by the ``plain`` recogniser, for renderings that are common English where
they stand, or by the recogniser ``biased`` towards the target words, for odd ones ("Ken" →
"can"); each needs its margin in ``verify_margins``.

The JSON file: ``{"version", "verify_margins": {"plain", "biased"}, "corrections": {phrase:
word}, "rules": [{"heard", "says", "at", "not_after", "not_written", "verify"}]}``;
``corrections`` is shorthand for rules that apply anywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from services.singlish.text import Break, Token, normalize, tokenize, tokens

Position = Literal["anywhere", "clause_end", "clause_start", "question_end"]
POSITIONS: tuple[str, ...] = ("anywhere", "clause_end", "clause_start", "question_end")
VERIFIERS: tuple[str, ...] = ("plain", "biased")
_PHRASE_SEP = re.compile(r"[\s,;:\-\u2013\u2014]+")
# The product spec's corrections dictionary, kept as the baseline the learned one is measured
# against (research.singlish_eval); shared/singlish/singlish_words.py has the same table.
SPEC_CORRECTIONS: dict[str, str] = {
    "while up": "walao",
    "wa lao": "walao",
    "cheap buy": "cheebai",
    "lunch hour": "lanjiao",
    "pie say": "paiseh",
    "shook": "shiok",
    "la": "lah",
    "low": "lor",
}
# nats: how much likelier the verifier must find the Singlish reading than the heard one
# ("unprompted": how much less likely, at most, the prompted reading of a target word may be
# than the unprompted one: services.singlish.crosscheck)
DEFAULT_VERIFY_MARGINS = {
    "plain": 1.25,
    "biased": 4.0,
    "unprompted": -math.inf,
    "particle": math.inf,  # services.singlish.particles: off unless the dictionary sets it
}


@dataclass(frozen=True)
class Rule:
    """``heard`` (normalised words, as ASR writes them) stands for ``says``."""

    heard: tuple[str, ...]
    says: str
    at: Position = "anywhere"
    not_after: frozenset[str] = frozenset()
    not_written: frozenset[str] = frozenset()
    verify: str = ""  # "" (fires on its own), "plain" or "biased" (see the module doc)

    def describe(self) -> str:
        """The rule as one line of evidence: ``"law" → "lor" (clause_end, not after: the)``."""
        text = f'"{" ".join(self.heard)}" → "{self.says}"'
        conditions: list[str] = [self.at] if self.at != "anywhere" else []
        if self.not_after:
            conditions.append("not after: " + " ".join(sorted(self.not_after)))
        if self.not_written:
            conditions.append("not written: " + " ".join(sorted(self.not_written)))
        if self.verify:
            conditions.append(f"verified: {self.verify}")
        return f"{text} ({', '.join(conditions)})" if conditions else text

    def applies(self, words: Sequence[Token], first: int, original: str) -> bool:
        """Whether the rule rewrites ``words[first : first + len(heard)]`` of ``original``."""
        last = first + len(self.heard) - 1
        if tuple(w.text for w in words[first : last + 1]) != self.heard:
            return False
        if any(not _PHRASE_SEP.fullmatch(w.gap) for w in words[first:last]):
            return False
        before = words[first - 1] if first else None
        if (before is not None and before.gap.endswith("'")) or words[last].gap.startswith("'"):
            return False  # a quote glued to the phrase makes it part of a longer word
        if original[words[first].start : words[last].end] in self.not_written:
            return False
        if before is not None and before.text in self.not_after:
            return False
        return _at(self.at, before, words[last])


# Whether a verify rule is confirmed for words[first:last] of the text being rewritten.
Confirmation = Callable[[Rule, int, int], bool]


def _at(position: Position, before: Token | None, last: Token) -> bool:
    if position == "clause_end":
        return last.after >= Break.CLAUSE
    if position == "clause_start":
        return before is None or before.after >= Break.CLAUSE
    if position == "question_end":
        return last.asks
    return True


@dataclass(frozen=True)
class Corrections:
    """A loaded dictionary; ``version`` is recorded with everything it corrects."""

    version: str
    rules: tuple[Rule, ...] = field(default=())  # longest phrase first
    by_first_word: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    verify_margins: Mapping[str, float] = field(default_factory=lambda: DEFAULT_VERIFY_MARGINS)

    @property
    def table(self) -> dict[str, str]:
        """Phrase → replacement, for display."""
        return {" ".join(r.heard): r.says for r in self.rules}


@dataclass(frozen=True)
class Rewrite:
    """One rule applied to ``words[first:last]`` of a text."""

    rule: Rule
    first: int
    last: int  # exclusive


def build_corrections(
    table: Mapping[str, str],
    version: str,
    rules: Iterable[Mapping[str, Any]] = (),
    verify_margins: Mapping[str, float] | None = None,
) -> Corrections:
    """Compile plain ``table`` entries (anywhere) and conditional ``rules``, longest phrase
    (most words, then letters) first."""
    compiled = [Rule(tuple(tokenize(k)), v) for k, v in table.items() if tokenize(k)]
    compiled += [_rule(entry) for entry in rules]
    ordered = sorted(
        {(*r.heard, r.at): r for r in compiled}.values(),
        key=lambda r: (-len(r.heard), -len("".join(r.heard)), r.heard, r.at == "anywhere"),
    )
    index: dict[str, list[Rule]] = {}
    for rule in ordered:
        index.setdefault(rule.heard[0], []).append(rule)
    margins = {**DEFAULT_VERIFY_MARGINS, **(verify_margins or {})}
    return Corrections(version, tuple(ordered), {k: tuple(v) for k, v in index.items()}, margins)


def _rule(entry: Mapping[str, Any]) -> Rule:
    heard = tuple(tokenize(entry["heard"]))
    at = entry.get("at", "anywhere")
    verify = entry.get("verify", "")
    if not heard or at not in POSITIONS or verify not in ("", *VERIFIERS):
        raise ValueError(f"bad corrections rule: {dict(entry)}")
    return Rule(
        heard,
        entry["says"],
        at,
        frozenset(normalize(w) for w in entry.get("not_after", ())),
        frozenset(entry.get("not_written", ())),
        verify,
    )


def load_corrections(path: Path | None = None) -> Corrections:
    """The dictionary in ``path``, or the bundled one. The version is the file's own plus a
    hash of its content, so an edited file can never pass for the old one."""
    raw = (
        path.read_bytes()
        if path is not None
        else resources.files("services").joinpath("data/corrections.json").read_bytes()
    )
    document = json.loads(raw)
    digest = hashlib.sha256(raw).hexdigest()[:8]
    return build_corrections(
        document.get("corrections", {}),
        f"{document.get('version', 'v')}+{digest}",
        document.get("rules", ()),
        document.get("verify_margins"),
    )


def _unconfirmed(rule: Rule, first: int, last: int) -> bool:
    return False


def find_rewrites(
    text: str, corrections: Corrections, confirmed: Confirmation = _unconfirmed
) -> tuple[Rewrite, ...]:
    """The rules that fire on ``text``, left to right; at each word the longest phrase whose
    conditions hold (and, for a verify rule, that ``confirmed`` accepts) wins, and rewritten
    words are not read again."""
    words = tokens(text)
    found: list[Rewrite] = []
    i = 0
    while i < len(words):
        candidates = corrections.by_first_word.get(words[i].text, ())
        rule = next(
            (
                r
                for r in candidates
                if r.applies(words, i, text) and (not r.verify or confirmed(r, i, i + len(r.heard)))
            ),
            None,
        )
        if rule is None:
            i += 1
            continue
        found.append(Rewrite(rule, i, i + len(rule.heard)))
        i += len(rule.heard)
    return tuple(found)


def apply_corrections(
    text: str,
    corrections: Corrections,
    confirmed: Confirmation = _unconfirmed,
    inserted: Mapping[int, str] | None = None,
) -> str:
    """``text`` lower-cased, with every rewritten phrase replaced by its Singlish word (verify
    rules only where ``confirmed``), and each word of ``inserted`` (word index → word: a
    particle heard after it) written after that word."""
    normal = normalize(text)
    words = tokens(text)
    rewrites = find_rewrites(text, corrections, confirmed)
    edits = [(words[r.first].start, words[r.last - 1].end, r.rule.says) for r in rewrites]
    rewritten = {i for r in rewrites for i in range(r.first, r.last)}
    edits += [
        (words[i].end, words[i].end, " " + word)
        for i, word in (inserted or {}).items()
        if i < len(words) and i not in rewritten
    ]
    pieces, cursor = [], 0
    for start, end, says in sorted(edits):
        pieces += [normal[cursor:start], says]
        cursor = end
    return "".join([*pieces, normal[cursor:]])
