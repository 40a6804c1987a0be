"""A second listen where the transcript holds ordinary English that may be a Singlish word.

Whisper often writes an English word for a particle ("presentation there." for "presentation
leh."). A ``verify`` rule of the dictionary names such renderings; for each place one matches,
:func:`verify` asks the recogniser how likely the stretch of audio around it is to say the words
as heard, and as rewritten, and records the difference as a :class:`Verdict`. A ``plain`` rule
asks it without a prompt (the Singlish reading must win on its own: for renderings that are
common English there), a ``biased`` rule with the target words as its prompt (for odd
renderings: "Ken" for "can"). :func:`services.singlish.occurrences.detect_occurrences` then
applies the rule where the margin reaches the dictionary's ``verify_margins``.

Only the few seconds around each candidate are encoded, and both readings are scored in one
teacher-forced pass, so the cost is a small fraction of transcription. Verdicts are stored
evidence: a recount with a new margin needs no audio.

``load_verifier(settings)`` loads the faster-whisper model the transcriber uses; ``verify`` is
the verb. CTranslate2 and faster-whisper are imported lazily.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import structlog

from config import Settings
from services.domain import Audio, ProgressCallback, Utterance, Word, no_progress
from services.singlish.dictionary import Corrections, Rule, find_rewrites
from services.singlish.text import tokens

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = structlog.get_logger(__name__)

CONTEXT_BEFORE_S = 15.0  # words of context read before a candidate
CONTEXT_AFTER_S = 3.0
AUDIO_PAD_S = 0.3  # audio kept either side of the first and last context word
_FLOOR = 1e-12  # probability floor before the log
# The verdicts of services.singlish.crosscheck: its own kind, beside the dictionary's verify
# rules ("plain", "biased"); its margin in the dictionary's verify_margins too.
UNPROMPTED = "unprompted"
UNPROMPTED_BEAM = 5


@dataclass(frozen=True)
class Verdict:
    """The check of one candidate: ``heard`` (the recognised words, at ``start``-``end`` s) read
    as ``says`` by ``rule``; ``margin`` = log P(audio says the rewritten text) - log P(it says
    the text as heard), in nats, under the ``verifier`` ("plain" or "biased"); positive: the
    Singlish reading is likelier."""

    speaker: str
    start: float
    end: float
    heard: str
    says: str
    rule: str
    verifier: str
    margin: float


class Verifier(Protocol):
    """Scores readings of one stretch of audio."""

    def log_probs(self, audio: Audio, texts: Sequence[str], prompt: str = "") -> list[float]:
        """log P(text | audio, prompt) for each text, in nats."""
        ...


@dataclass(frozen=True)
class WhisperVerifier:
    """Teacher-forced scoring with a faster-whisper model's CTranslate2 Whisper."""

    whisper: WhisperModel

    def log_probs(self, audio: Audio, texts: Sequence[str], prompt: str = "") -> list[float]:
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer

        model: Any = self.whisper.model
        tokenizer = Tokenizer(
            self.whisper.hf_tokenizer, model.is_multilingual, task="transcribe", language="en"
        )
        # shape (n_mels, frames): no padding to 30 s, the encoder takes the short window
        features = self.whisper.feature_extractor(audio.samples, padding=0)
        encoded = np.asarray(
            model.encode(
                ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])),
                to_cpu=True,
            )
        )
        batch = ctranslate2.StorageView.from_array(
            np.ascontiguousarray(np.repeat(encoded, len(texts), axis=0))
        )
        # a prompt goes where Whisper keeps the previous window's text, as faster-whisper's
        # hotwords do
        previous = [tokenizer.sot_prev, *tokenizer.encode(" " + prompt.strip())] if prompt else []
        results = model.align(
            batch,
            [*previous, *tokenizer.sot_sequence, tokenizer.no_timestamps],
            [[*tokenizer.encode(" " + t.strip()), tokenizer.eot] for t in texts],
            [features.shape[-1]] * len(texts),
        )
        return [sum(math.log(max(p, _FLOOR)) for p in r.text_token_probs) for r in results]

    def transcribe(self, audio: Audio) -> str:
        """The text of a short stretch of ``audio``, decoded with no prompt, no VAD and no
        previous text (the cross-check's second listen)."""
        segments, _info = self.whisper.transcribe(
            audio.samples,
            language="en",
            beam_size=UNPROMPTED_BEAM,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
            temperature=[0.0],
        )
        return "".join(s.text for s in segments).strip()


def load_verifier(settings: Settings, transcriber: object | None = None) -> WhisperVerifier | None:
    """The verifier ``settings.singlish_verify`` asks for, or None. It scores with the
    faster-whisper model the ``transcriber`` already holds (else loads
    ``settings.asr_model``); with the transformers backend there is none (it is logged), as
    that backend's production models are trained on Singapore speech."""
    from services.transcription import FasterWhisperTranscriber, load_faster_whisper_transcriber

    if not settings.singlish_verify:
        return None
    if settings.asr_backend != "faster-whisper":
        log.warning("verification.unavailable", asr_backend=settings.asr_backend)
        return None
    if not isinstance(transcriber, FasterWhisperTranscriber):
        transcriber = load_faster_whisper_transcriber(settings)
    return WhisperVerifier(transcriber.whisper)


def verify(
    audio: Audio,
    utterances: Sequence[Utterance],
    corrections: Corrections,
    verifier: Verifier,
    on_progress: ProgressCallback = no_progress,
    prompt: str = "",
) -> tuple[Verdict, ...]:
    """A verdict for every place a ``verify`` rule of ``corrections`` matches in
    ``utterances`` (16 kHz ``audio`` of the whole session); ``biased`` rules are scored with
    ``prompt`` (the transcriber's hotwords, :func:`services.singlish.hotword_prompt`). Reports
    the fraction of utterances done."""
    verdicts: list[Verdict] = []
    for done, utterance in enumerate(utterances, start=1):
        for rule, first, last in candidates(utterance, corrections):
            given = prompt if rule.verify == "biased" else ""
            verdicts.append(_check(audio, utterance, (rule, first, last), verifier, given))
        on_progress(done / len(utterances))
    return tuple(verdicts)


def candidates(utterance: Utterance, corrections: Corrections) -> list[tuple[Rule, int, int]]:
    """(rule, first word, last word exclusive) of each verify rule that would fire in the
    utterance's text (word indices into :func:`services.singlish.text.tokens` of it)."""
    if not any(r.verify for r in corrections.rules):
        return []
    rewrites = find_rewrites(utterance.text, corrections, confirmed=lambda *_: True)
    return [(r.rule, r.first, r.last) for r in rewrites if r.rule.verify]


def _check(
    audio: Audio,
    utterance: Utterance,
    candidate: tuple[Rule, int, int],
    verifier: Verifier,
    prompt: str,
) -> Verdict:
    rule, first, last = candidate
    text = utterance.text
    words = tokens(text)
    lo, hi = words[first].start, words[last - 1].end
    spans = word_spans(utterance.words)
    start, end, _ = span_times(spans, lo, hi)
    context = [
        (a, b, w)
        for a, b, w in spans
        if w.end > start - CONTEXT_BEFORE_S and w.start < end + CONTEXT_AFTER_S
    ]
    c_lo, c_hi = max(0, context[0][0]), context[-1][1]
    says = rule.says.capitalize() if text[lo : lo + 1].isupper() else rule.says
    heard_text = text[c_lo:c_hi]
    rewritten = text[c_lo:lo] + says + text[hi:c_hi]
    window = audio.slice(context[0][2].start - AUDIO_PAD_S, context[-1][2].end + AUDIO_PAD_S)
    as_heard, as_rewritten = verifier.log_probs(window, [heard_text, rewritten], prompt)
    return Verdict(
        utterance.speaker, start, end, text[lo:hi], rule.says, rule.describe(), rule.verify,
        round(as_rewritten - as_heard, 3),
    )  # fmt: skip


def word_spans(words: Sequence[Word]) -> list[tuple[int, int, Word]]:
    """Each word's character span in :attr:`Utterance.text` (the joined texts, stripped)."""
    joined = "".join(w.text for w in words)
    offset = len(joined) - len(joined.lstrip())
    spans, cursor = [], -offset
    for word in words:
        spans.append((cursor, cursor + len(word.text), word))
        cursor += len(word.text)
    return spans


def span_times(
    spans: Sequence[tuple[int, int, Word]], start: int, end: int
) -> tuple[float, float, float]:
    """(start s, end s, lowest probability) of the words overlapping characters [start, end)
    of the utterance text; the nearest word when none does (an empty utterance: zeros)."""
    covered = [w for lo, hi, w in spans if lo < end and hi > start]
    if not covered and spans:
        covered = [min(spans, key=lambda s: abs(s[0] - start))[2]]
    if not covered:
        return 0.0, 0.0, 0.0
    return (
        min(w.start for w in covered),
        max(w.end for w in covered),
        min(w.probability for w in covered),
    )
