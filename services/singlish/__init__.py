"""Hearing the Singlish target words: everything about "lah", "walao", "sia"... lives here.

- ``words``: the target words and how often a text says them;
- ``hotwords``: the prompt that biases the recogniser towards them;
- ``text``: the tokens and normal forms the rules read;
- ``dictionary``: the corrections dictionary (what the recogniser writes for each word, and
  the context rules), versioned;
- ``verification``: the second listen, which scores the Singlish reading of a stretch of
  audio against the English one;
- ``crosscheck``: the unprompted listen at each word the prompted decoder wrote;
- ``particles``: the listen for particles dropped at clause ends (off unless the dictionary
  sets a "particle" margin: it did not pay on the dev set, BENCHMARKS.md);
- ``occurrences``: one :class:`~services.singlish.occurrences.Occurrence` per word heard,
  with its evidence; counts are derived from these only;
- ``confidence``: how sure we are of each occurrence (calibrated), and which ones count.

Two entry points, in the order the pipeline calls them: :func:`listen_again` (audio in hand:
the second listen where a verify rule may fire, then the unprompted one at prompted words)
and :func:`read` (pure: one utterance's corrected text and occurrences, given the verdicts),
which the analysis and the recount call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from config import Settings
from services.domain import Audio, ProgressCallback, Utterance, no_progress
from services.singlish.confidence import Rating, confidence_of, load_calibration
from services.singlish.crosscheck import Listener, cross_check
from services.singlish.dictionary import Corrections, load_corrections
from services.singlish.hotwords import decoding_targets, hotword_prompt
from services.singlish.occurrences import (
    Occurrence,
    corrected_text,
    detect_occurrences,
    verdicts_within,
)
from services.singlish.particles import PARTICLE, listen_for_particles
from services.singlish.verification import Verdict, Verifier, load_verifier, verify


@dataclass(frozen=True)
class Singlish:
    """What hears the target words, loaded once: the dictionary, the verifier for the
    second listen (None when ``SINGLISH_VERIFY`` is off or the recogniser has none), the
    rating of each occurrence (the confidence calibration and ``COUNT_MIN_CONFIDENCE``), and
    the words the decoder was prompted with, which the verifier listens to again without the
    prompt (none when ``SINGLISH_CROSS_CHECK`` or the hotwords are off)."""

    corrections: Corrections
    verifier: Verifier | Listener | None = None
    rating: Rating = field(default_factory=Rating)
    prompted: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reading:
    """One utterance as the counts read it: the corrected text the app shows, the verdicts
    on its words and the target words found (the same rewrites as the text)."""

    corrected_text: str
    verdicts: tuple[Verdict, ...]
    occurrences: tuple[Occurrence, ...]


def load_singlish(settings: Settings, transcriber: object | None = None) -> Singlish:
    """The dictionary (``CORRECTIONS_FILE`` or the shipped one), the verifier, which
    scores with the model ``transcriber`` already holds, and the rating."""
    checks = settings.singlish_cross_check and settings.singlish_hotwords
    return Singlish(
        load_corrections(settings.corrections_file),
        load_verifier(settings, transcriber),
        load_rating(settings),
        decoding_targets() if checks else (),
    )


def load_rating(settings: Settings) -> Rating:
    """The confidence calibration (``CONFIDENCE_CALIBRATION_FILE`` or the shipped one) at the
    operating point ``COUNT_MIN_CONFIDENCE``."""
    return Rating(
        load_calibration(settings.confidence_calibration_file), settings.count_min_confidence
    )


def listen_again(
    audio: Audio,
    utterances: Sequence[Utterance],
    singlish: Singlish,
    on_progress: ProgressCallback = no_progress,
) -> tuple[Verdict, ...]:
    """The verifier's verdicts on every stretch of ``utterances`` where a verify rule would
    fire, at every clause end (only where the dictionary sets a "particle" margin), then on
    every prompted word found with them (none without a verifier); 16 kHz ``audio`` of the
    whole session."""
    verifier = singlish.verifier
    if verifier is None:
        return ()
    verdicts = verify(
        audio,
        utterances,
        singlish.corrections,
        verifier,
        lambda done: on_progress(done / 2),
        prompt=hotword_prompt(),
    )
    if singlish.corrections.verify_margins[PARTICLE] < math.inf:  # off unless the dictionary asks
        verdicts += listen_for_particles(audio, utterances, singlish.corrections, verifier)
    if not singlish.prompted or not isinstance(verifier, Listener):
        return verdicts
    found = detect_occurrences(utterances, singlish.corrections, verdicts)
    crossed = cross_check(
        audio,
        utterances,
        found,
        verifier,
        singlish.prompted,
        lambda done: on_progress(0.5 + done / 2),
    )
    return verdicts + crossed


def read(
    utterance: Utterance,
    corrections: Corrections,
    verdicts: Iterable[Verdict],
    rating: Rating | None = None,
) -> Reading:
    """What ``utterance`` says of the target words, with the verdicts that fall inside it
    deciding its verify rules, each occurrence rated by ``rating`` (unrated without). Pure:
    re-reading stored utterances and verdicts with a new dictionary is the recount."""
    checked = verdicts_within(utterance, verdicts)
    found = detect_occurrences([utterance], corrections, checked)
    if rating is not None:
        found = tuple(replace(o, confidence=confidence_of(o, rating)) for o in found)
    return Reading(corrected_text(utterance, corrections, checked), checked, found)
