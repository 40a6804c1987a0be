"""How sure we are of each occurrence: a confidence in [0, 1], calibrated so that of the
occurrences rated about 0.9, about 9 in 10 are right.

:func:`features` reads what heard the word (the recogniser's word probability or the
verifier's margin, and which source made it a target word) and what surrounds it in its
utterance (how sure the recogniser was of the neighbouring words, and how many other target
words the utterance holds: the hotword-prompted decoder writes runs of target words over noisy
speech it cannot read); :func:`rate` maps them through a logistic :class:`Calibration` fitted on
the generated tune sets by ``research/calibrate_confidence.py`` and shipped, versioned, as
``services/data/confidence.json``. A calibration without a weight for a feature ignores it.

A group's own disputes and confirmations (:class:`GroupFeedback`) then move an occurrence's
confidence for that group (:func:`rate_for_group`): the calibrated confidence is a prior worth
:data:`PRIOR_WEIGHT` judgements, and the group's judgements of the same reading (same word,
rule and heard text) update it: each dispute counts as one "wrong", each confirmation as one
"right", and so does each occurrence of that reading left counted and undisputed in a session
the group reviewed (one with any decision: what they read and let stand). Only confirmations
lift a confidence: what was let stand only weighs against the disputes. A reading a group
keeps disputing thus stops counting in its later sessions, one disputed once among many it
let stand barely moves, and one it keeps confirming counts even below the threshold.

Whether an occurrence counts (:func:`counts`): a human decision wins (``disputed`` never
counts, ``confirmed`` always does); otherwise it counts when its confidence is at least
``COUNT_MIN_CONFIDENCE``. Pure functions, no ML imports.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from services.singlish.text import tokenize
from services.singlish.words import TARGET_WORDS

CALIBRATION_FILE = Path(__file__).resolve().parents[1] / "data" / "confidence.json"

DISPUTED = "disputed"
CONFIRMED = "confirmed"
ACCEPTED = "accepted"  # counted and left standing in a session the group reviewed

# The feature names, in the order the fitted weights are stored.
FEATURES: tuple[str, ...] = (
    "asr",  # the recogniser wrote the target word itself
    "asr_logit",  # ... and how sure it was (logit of its lowest word probability)
    "correction",  # a dictionary rule rewrote what it wrote
    "correction_logit",
    "verified",  # a verify rule the second listen confirmed
    "verified_margin",  # ... by how much (nats, clipped to ±10)
    "english_word",  # the target is also an everyday English word ("can", "ah")
    "context_logit",  # logit of the neighbouring words' mean probability (0 without neighbours)
    "other_targets",  # other target words the recogniser wrote in the utterance (at most 3)
    "asr_floor",  # the recogniser wrote it at a probability below ASR_FLOOR
)
ENGLISH_WORDS = frozenset({"can", "ah"})
ASR_FLOOR = 0.1
_WANTED = frozenset(TARGET_WORDS)
PRIOR_WEIGHT = 2.0  # how many of the group's own judgements the calibrated confidence is worth


class Evidence(Protocol):
    """What an :class:`~services.singlish.occurrences.Occurrence` and a stored occurrence
    row both say about how a target word was heard."""

    @property
    def word(self) -> str: ...
    @property
    def heard(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def score(self) -> float | None: ...


class Heard(Evidence, Protocol):
    """An :class:`~services.singlish.occurrences.Occurrence` as it is rated: its evidence and
    the utterance around it."""

    @property
    def text(self) -> str: ...
    @property
    def context_probability(self) -> float | None: ...


@dataclass(frozen=True)
class Calibration:
    """A fitted logistic map from :func:`features` to the probability of being right."""

    version: str
    intercept: float
    weights: Mapping[str, float] = field(default_factory=dict)


# The rating before any fit: every occurrence is as sure as the old counts assumed.
UNCALIBRATED = Calibration(version="uncalibrated", intercept=10.0)


def load_calibration(path: Path | None = None) -> Calibration:
    """The calibration at ``path`` (``CONFIDENCE_CALIBRATION_FILE``), else the shipped one."""
    data = json.loads((path or CALIBRATION_FILE).read_text(encoding="utf-8"))
    unknown = set(data["weights"]) - set(FEATURES)
    if unknown:
        raise ValueError(f"calibration {data['version']}: unknown features {sorted(unknown)}")
    return Calibration(data["version"], float(data["intercept"]), dict(data["weights"]))


def features(evidence: Heard) -> dict[str, float]:
    """The evidence as numbers, one per name of :data:`FEATURES`."""
    score = evidence.score if evidence.score is not None else 0.0
    source = evidence.source
    logit = _logit(score)
    context = evidence.context_probability
    return {
        "asr": float(source == "asr"),
        "asr_logit": logit if source == "asr" else 0.0,
        "correction": float(source == "correction"),
        "correction_logit": logit if source == "correction" else 0.0,
        "verified": float(source == "verified"),
        "verified_margin": max(-10.0, min(10.0, score)) if source == "verified" else 0.0,
        "english_word": float(evidence.word in ENGLISH_WORDS),
        "context_logit": _logit(context) if context is not None else 0.0,
        "other_targets": float(other_targets(evidence.text, evidence.word)),
        "asr_floor": float(source == "asr" and score < ASR_FLOOR),
    }


def other_targets(text: str, word: str, most: int = 3) -> int:
    """How many target words ``text`` holds besides one ``word`` (at most ``most``)."""
    said = [t for t in tokenize(text) if t in _WANTED]
    return min(most, len(said) - (word in said))


def rate(evidence: Heard, calibration: Calibration) -> float:
    """The calibrated probability that this occurrence is right, in [0, 1]."""
    z = calibration.intercept + sum(
        calibration.weights.get(name, 0.0) * value for name, value in features(evidence).items()
    )
    return round(1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z)))), 4)


def _logit(probability: float) -> float:
    p = max(0.01, min(0.99, probability))
    return math.log(p / (1 - p))


# --- a group's own judgements -------------------------------------------------------------------


def reading_key(evidence: Evidence) -> str:
    """What a group's judgements are about: this word, read by this rule from this text."""
    return f"{evidence.word}|{evidence.rule}|{evidence.heard.strip().lower()}"


@dataclass(frozen=True)
class GroupFeedback:
    """A group's judgements so far: per :func:`reading_key`, how often that reading was
    disputed, confirmed and accepted; ``version`` names exactly this set of judgements
    (stored on each occurrence it rated)."""

    version: str = ""
    disputed: Mapping[str, int] = field(default_factory=dict)
    confirmed: Mapping[str, int] = field(default_factory=dict)
    accepted: Mapping[str, int] = field(default_factory=dict)


NO_FEEDBACK = GroupFeedback()


def group_feedback(judgements: Iterable[tuple[str, str]]) -> GroupFeedback:
    """The feedback made of (reading key, ``disputed``/``confirmed``/``accepted``) pairs, one
    per judged occurrence; none without a dispute or a confirmation."""
    tallies: dict[str, dict[str, int]] = {DISPUTED: {}, CONFIRMED: {}, ACCEPTED: {}}
    for key, decision in judgements:
        tally = tallies[decision]
        tally[key] = tally.get(key, 0) + 1
    if not tallies[DISPUTED] and not tallies[CONFIRMED]:
        return NO_FEEDBACK
    digest = hashlib.sha256(
        json.dumps({k: sorted(v.items()) for k, v in tallies.items()}).encode()
    ).hexdigest()
    return GroupFeedback(
        f"fb-{digest[:12]}", tallies[DISPUTED], tallies[CONFIRMED], tallies[ACCEPTED]
    )


def rate_for_group(evidence: Heard, calibration: Calibration, feedback: GroupFeedback) -> float:
    """:func:`rate`, moved by the group's judgements of the same reading: the calibrated
    confidence as a prior worth :data:`PRIOR_WEIGHT` judgements, updated by the disputes
    ("wrong"), confirmations and acceptances ("right"), and never lifted above what the
    confirmations alone would lift it to."""
    confidence = rate(evidence, calibration)
    key = reading_key(evidence)
    wrong = feedback.disputed.get(key, 0)
    confirmed, accepted = feedback.confirmed.get(key, 0), feedback.accepted.get(key, 0)
    if not wrong and not confirmed:
        return confidence
    k = PRIOR_WEIGHT
    updated = (confidence * k + confirmed + accepted) / (k + confirmed + accepted + wrong)
    ceiling = (confidence * k + confirmed) / (k + confirmed)
    return round(min(updated, ceiling), 4)


@dataclass(frozen=True)
class Rating:
    """What rates occurrences and decides which count: the calibration, the operating point
    (``COUNT_MIN_CONFIDENCE``) and, for a group's session, that group's feedback."""

    calibration: Calibration = UNCALIBRATED
    min_confidence: float = 0.0
    feedback: GroupFeedback = NO_FEEDBACK

    @property
    def version(self) -> str:
        """What rated an occurrence: the calibration, and the group's feedback if any."""
        return "+".join(v for v in (self.calibration.version, self.feedback.version) if v)


def confidence_of(evidence: Heard, rating: Rating) -> float:
    """The occurrence's confidence under ``rating`` (its group's feedback included)."""
    return rate_for_group(evidence, rating.calibration, rating.feedback)


def counts(confidence: float | None, decision: str | None, min_confidence: float) -> bool:
    """Whether an occurrence counts: a human decision wins, else the threshold decides (an
    occurrence with no confidence, from before confidences, keeps counting)."""
    if decision is not None:
        return decision == CONFIRMED
    return confidence is None or confidence >= min_confidence
