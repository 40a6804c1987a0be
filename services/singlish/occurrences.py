"""Every counted target word, with the evidence for it.

:func:`detect_occurrences` reads the speaker-attributed utterances (their words and times) with
the corrections dictionary and the verifier's verdicts, and returns one :class:`Occurrence` per
target word heard: who, when, the text it came from and what produced it. Counts are derived
from occurrences only (:func:`count_occurrences`), so a count can always be traced back to a
stretch of audio.

Pure functions, no ML imports. Re-running :func:`detect_occurrences` on stored utterances and
verdicts with a new dictionary is the recount: no ASR is involved. (A verify rule that is new in
the dictionary has no verdicts yet, so it fires only after the session is processed again.)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.domain import Utterance, Word
from services.singlish.dictionary import (
    Confirmation,
    Corrections,
    Rule,
    apply_corrections,
    find_rewrites,
)
from services.singlish.particles import PARTICLE
from services.singlish.particles import RULE as PARTICLE_RULE
from services.singlish.text import Break, tokenize, tokens
from services.singlish.verification import UNPROMPTED, Verdict, span_times, word_spans
from services.singlish.words import TARGET_WORDS

SOURCE_ASR = "asr"  # the recogniser wrote the target word itself
SOURCE_CORRECTION = "correction"  # a dictionary rule rewrote what it wrote
SOURCE_VERIFIED = "verified"  # a verify rule, confirmed by the verifier's second listen
NEIGHBOURS = 3  # words either side of an occurrence whose probabilities are its context


@dataclass(frozen=True)
class Occurrence:
    """One target word said by one speaker.

    ``start``/``end`` are seconds from the start of the session audio (the recognised words it
    was read from); ``text`` is the utterance as recognised and ``heard`` the words of it that
    were read as the target ("voila"); ``rule`` is the dictionary rule that did it ("" when the
    recogniser wrote the word itself) and ``dictionary_version`` the dictionary it came from;
    ``score`` is the recogniser's lowest word probability over ``heard`` (0-1), or for a
    verified occurrence the verifier's margin (nats); ``confidence`` the calibrated probability
    that it is right (:mod:`services.singlish.confidence`; None until rated);
    ``context_probability`` the recogniser's mean word probability over up to
    :data:`NEIGHBOURS` words either side of ``heard`` (0-1; None when the utterance has no other
    word): low where it wrote words over speech it could not read.
    """

    speaker: str
    word: str
    start: float
    end: float
    text: str
    heard: str
    source: str
    rule: str
    dictionary_version: str
    score: float
    confidence: float | None = None
    context_probability: float | None = None


def detect_occurrences(
    utterances: Iterable[Utterance],
    corrections: Corrections,
    verdicts: Iterable[Verdict] = (),
    targets: Sequence[str] = TARGET_WORDS,
) -> tuple[Occurrence, ...]:
    """The target words in ``utterances``, in utterance order then text order. A verify rule
    fires where a verdict on the same words gives it at least its verifier's margin
    (``corrections.verify_margins``); a word that the unprompted second listen
    (:mod:`services.singlish.crosscheck`) found below ``verify_margins["unprompted"]`` is
    dropped; a particle the clause-end listen (:mod:`services.singlish.particles`) heard with
    at least ``verify_margins["particle"]`` is added."""
    wanted = frozenset(targets)
    verdicts = tuple(verdicts)
    margins = _margins(verdicts)
    particles = _margins(verdicts, PARTICLE)
    floor = corrections.verify_margins[UNPROMPTED]
    doubted = {key for key, margin in _margins(verdicts, UNPROMPTED).items() if margin < floor}
    found: list[Occurrence] = []
    for utterance in utterances:
        found.extend(
            o
            for o in _in_utterance(utterance, corrections, margins, wanted, particles)
            if (o.speaker, round(o.start, 3), round(o.end, 3), o.word) not in doubted
        )
    return tuple(found)


def corrected_text(
    utterance: Utterance, corrections: Corrections, verdicts: Iterable[Verdict] = ()
) -> str:
    """The utterance's text lower-cased and rewritten exactly as :func:`detect_occurrences`
    reads it, so that the displayed text and the counts agree."""
    verdicts = tuple(verdicts)
    confirmed = _confirmation(utterance, corrections, _margins(verdicts))
    inserted = {
        i: says
        for i, (says, _) in _heard_particles(
            utterance, corrections, _margins(verdicts, PARTICLE)
        ).items()
    }
    return apply_corrections(utterance.text, corrections, confirmed, inserted)


def verdicts_within(utterance: Utterance, verdicts: Iterable[Verdict]) -> tuple[Verdict, ...]:
    """The verdicts on words of ``utterance`` (same speaker, inside its time span)."""
    return tuple(
        v
        for v in verdicts
        if v.speaker == utterance.speaker
        and utterance.start - 1e-6 <= v.start
        and v.end <= utterance.end + 1e-6
    )


def count_occurrences(occurrences: Iterable[Occurrence]) -> dict[str, Counter[str]]:
    """Speaker → target word → how many occurrences."""
    totals: dict[str, Counter[str]] = {}
    for occurrence in occurrences:
        totals.setdefault(occurrence.speaker, Counter())[occurrence.word] += 1
    return totals


# (speaker, start, end, says) → margin: verdicts are found again by the words they checked
_VerdictKey = tuple[str, float, float, str]


_OTHER_KINDS = (UNPROMPTED, PARTICLE)  # verdicts that are not on a dictionary rule


def _margins(verdicts: Iterable[Verdict], kind: str = "") -> dict[_VerdictKey, float]:
    """The margins of the dictionary's verify rules (``kind`` ""), or of one other kind of
    verdict (``UNPROMPTED``, ``PARTICLE``)."""
    return {
        (v.speaker, round(v.start, 3), round(v.end, 3), v.says): v.margin
        for v in verdicts
        if v.verifier == kind or (not kind and v.verifier not in _OTHER_KINDS)
    }


def _heard_particles(
    utterance: Utterance, corrections: Corrections, particles: dict[_VerdictKey, float]
) -> dict[int, tuple[str, float]]:
    """Word index (into :func:`tokens` of the text) → (particle, margin) for each particle
    verdict on a clause end of ``utterance`` at or above ``verify_margins["particle"]``."""
    floor = corrections.verify_margins.get(PARTICLE, math.inf)
    if not particles or floor == math.inf:
        return {}
    words = tokens(utterance.text)
    spans = word_spans(utterance.words)
    heard = {}
    for (speaker, start, end, says), margin in particles.items():
        if speaker != utterance.speaker or margin < floor:
            continue
        at = [
            i
            for i, w in enumerate(words)
            if w.after >= Break.CLAUSE
            and tuple(round(t, 3) for t in span_times(spans, w.start, w.end)[:2]) == (start, end)
        ]
        if at:
            heard[at[-1]] = (says, margin)
    return heard


def _confirmation(
    utterance: Utterance, corrections: Corrections, margins: dict[_VerdictKey, float]
) -> Confirmation:
    words = tokens(utterance.text)
    spans = word_spans(utterance.words)

    def confirmed(rule: Rule, first: int, last: int) -> bool:
        start, end, _ = span_times(spans, words[first].start, words[last - 1].end)
        key = (utterance.speaker, round(start, 3), round(end, 3), rule.says)
        return margins.get(key, -math.inf) >= corrections.verify_margins[rule.verify]

    return confirmed


@dataclass(frozen=True)
class _Reading:
    """What one stretch of an utterance's text (characters ``start``-``end``, from word
    ``first``) was read as, and why."""

    first: int
    start: int
    end: int
    says: str
    source: str
    rule: Rule | None
    margin: float | None = None  # a particle heard after the word: its verdict's margin
    described: str = ""  # what read it, when no dictionary rule did


_PARTICLE_READ = f"{PARTICLE_RULE} (verified: {PARTICLE})"


def _in_utterance(
    utterance: Utterance,
    corrections: Corrections,
    margins: dict[_VerdictKey, float],
    wanted: frozenset[str],
    particles: dict[_VerdictKey, float],
) -> list[Occurrence]:
    spans = word_spans(utterance.words)
    found = []
    for reading in _readings(utterance, corrections, margins, particles):
        start, end, probability = span_times(spans, reading.start, reading.end)
        rule = reading.rule
        score = probability
        if reading.margin is not None:
            score = reading.margin
        elif rule is not None and rule.verify:
            score = margins[(utterance.speaker, round(start, 3), round(end, 3), rule.says)]
        for said in tokenize(reading.says):
            if said in wanted:
                found.append(
                    Occurrence(
                        speaker=utterance.speaker,
                        word=said,
                        start=start,
                        end=end,
                        text=utterance.text,
                        heard=utterance.text[reading.start : reading.end],
                        source=reading.source,
                        rule=rule.describe() if rule else reading.described,
                        dictionary_version=corrections.version,
                        score=score,
                        context_probability=_context(spans, reading.start, reading.end),
                    )
                )
    return found


def _context(spans: Sequence[tuple[int, int, Word]], start: int, end: int) -> float | None:
    """The mean probability of up to :data:`NEIGHBOURS` words either side of the words over
    characters [``start``, ``end``) of the text; None without any."""
    inside = [i for i, (lo, hi, _) in enumerate(spans) if lo < end and hi > start]
    if not inside:
        return None
    before = spans[max(0, inside[0] - NEIGHBOURS) : inside[0]]
    after = spans[inside[-1] + 1 : inside[-1] + 1 + NEIGHBOURS]
    around = [w.probability for _, _, w in (*before, *after)]
    return round(sum(around) / len(around), 4) if around else None


def _readings(
    utterance: Utterance,
    corrections: Corrections,
    margins: dict[_VerdictKey, float],
    particles: dict[_VerdictKey, float],
) -> list[_Reading]:
    """The rewrites of the utterance's text, its other words as written and the particles
    heard after clause ends (read from the word before them), in text order."""
    words = tokens(utterance.text)
    confirmed = _confirmation(utterance, corrections, margins)
    readings: list[_Reading] = []
    rewritten: set[int] = set()
    for rewrite in find_rewrites(utterance.text, corrections, confirmed):
        rewritten.update(range(rewrite.first, rewrite.last))
        source = SOURCE_VERIFIED if rewrite.rule.verify else SOURCE_CORRECTION
        start, end = words[rewrite.first].start, words[rewrite.last - 1].end
        readings.append(
            _Reading(rewrite.first, start, end, rewrite.rule.says, source, rewrite.rule)
        )
    readings += [
        _Reading(i, w.start, w.end, w.text, SOURCE_ASR, None)
        for i, w in enumerate(words)
        if i not in rewritten
    ]
    readings += [
        _Reading(i, words[i].start, words[i].end, says, SOURCE_VERIFIED, None, margin,
                 _PARTICLE_READ)
        for i, (says, margin) in _heard_particles(utterance, corrections, particles).items()
        if i not in rewritten
    ]  # fmt: skip
    return sorted(readings, key=lambda r: r.first)
