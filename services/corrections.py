"""The corrections dictionary: phrases ASR writes for Singlish words ("while up" → "walao").

Applied case-insensitively to whole words and phrases, longest phrase first. Between the words
of a phrase any run of spaces, commas, hyphens or dashes matches (ASR punctuation is arbitrary),
but not a sentence end: "cheap, buy" matches "cheap buy", "cheap. Buy" does not.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from services.text import WORD, normalize, tokenize

_PHRASE_SEP = r"[\s,;:\-\u2013\u2014]+"


@dataclass(frozen=True)
class Corrections:
    """A loaded dictionary; ``version`` is recorded on every session it corrects."""

    version: str
    table: Mapping[str, str]  # normalised phrase ("while up") → replacement ("walao")
    pattern: re.Pattern[str] | None


def build_corrections(table: Mapping[str, str], version: str) -> Corrections:
    """Compile ``table`` into one regex, longest phrase (most words, then letters) first."""
    normalised = {" ".join(tokenize(k)): v for k, v in table.items() if tokenize(k)}
    phrases = sorted(normalised, key=lambda p: (-len(p.split()), -len(p), p))
    alternatives = [_PHRASE_SEP.join(re.escape(w) for w in p.split()) for p in phrases]
    pattern = (
        re.compile(r"(?<![a-z0-9'])(?:" + "|".join(alternatives) + r")(?![a-z0-9'])")
        if alternatives
        else None
    )
    return Corrections(version=version, table=normalised, pattern=pattern)


def load_corrections(path: Path | None = None) -> Corrections:
    """The dictionary in ``path`` (JSON: ``{"version", "corrections": {phrase: word}}``), or the
    bundled spec dictionary. The version is the file's own plus a hash of its content, so an
    edited file can never pass for the old one."""
    raw = (
        path.read_bytes()
        if path is not None
        else resources.files("services").joinpath("data/corrections.json").read_bytes()
    )
    document = json.loads(raw)
    digest = hashlib.sha256(raw).hexdigest()[:8]
    return build_corrections(document["corrections"], f"{document.get('version', 'v')}+{digest}")


def apply_corrections(text: str, corrections: Corrections) -> str:
    """``text`` lower-cased, with every dictionary phrase replaced by its Singlish word."""
    text = normalize(text)
    if corrections.pattern is None:
        return text

    def replace(match: re.Match[str]) -> str:
        return corrections.table[" ".join(WORD.findall(match.group(0)))]

    return corrections.pattern.sub(replace, text)
