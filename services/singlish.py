"""Biasing the recogniser towards the target words.

Whisper has seen little Singlish: unprompted, the bundled models write "voila" for "walao" and
drop "ah". Given the target words as ``hotwords`` (faster-whisper puts them in the decoder's
prompt before every 30 s window), the Whisper base model writes most of them as spelled here
(see ``bench/singlish_eval.py``). ``load_hotword_transcriber(settings)`` wraps the product's
faster-whisper transcriber so; ``services.transcription.transcribe`` runs it like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from config import Settings
from services.counting import TARGET_WORDS
from services.domain import Audio, ProgressCallback, TranscriptSegment
from services.transcription import (
    FasterWhisperTranscriber,
    _from_whisper_segment,
    load_faster_whisper_transcriber,
)


def hotword_prompt(targets: Sequence[str] = TARGET_WORDS) -> str:
    """The prompt text: the words as one comma-separated sentence ("Walao, cheebai, ...
    bojio."). Whisper copies spelling from its prompt, so it writes the words the way the
    counter looks for them. (Sentences using the words did worse: see the bench.)"""
    words = list(targets)
    return ", ".join([words[0].capitalize(), *words[1:]]) + "." if words else ""


@dataclass(frozen=True)
class HotwordTranscriber:
    """The product's faster-whisper transcriber, decoding with ``hotwords``."""

    inner: FasterWhisperTranscriber
    hotwords: str

    def transcribe(
        self, audio: Audio, on_progress: ProgressCallback
    ) -> tuple[TranscriptSegment, ...]:
        segments, _info = self.inner.whisper.transcribe(
            audio.samples,
            language=self.inner.language,
            beam_size=self.inner.beam_size,
            word_timestamps=True,
            vad_filter=self.inner.vad_filter,
            hotwords=self.hotwords,
        )
        recognised = []
        for segment in segments:  # lazy: decoding happens as we iterate
            if segment.words:
                recognised.append(_from_whisper_segment(segment, audio.duration))
            on_progress(min(1.0, segment.end / audio.duration))
        return tuple(recognised)


def load_hotword_transcriber(settings: Settings, hotwords: str | None = None) -> HotwordTranscriber:
    """``load_faster_whisper_transcriber(settings)`` decoding with ``hotwords`` (default: the
    target words)."""
    return HotwordTranscriber(
        load_faster_whisper_transcriber(settings),
        hotword_prompt() if hotwords is None else hotwords,
    )
