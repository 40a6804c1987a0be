"""The small frozen values the pipeline stages take and return.

Times are seconds from the start of the session's concatenated audio. Audio is 16 kHz mono
float32 in [-1, 1]. No stage mutates its input; each returns new values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000

# A stage reports the fraction (0.0-1.0) of its own work done; the processor maps it onto
# the session's 0-100 range. Stages call it unconditionally, so the default is a no-op.
ProgressCallback = Callable[[float], None]


def no_progress(fraction: float) -> None:
    """The default progress hook: ignore the report."""


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples, shape (n_samples,), at ``sample_rate`` Hz."""

    samples: npt.NDArray[np.float32]
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    def slice(self, start: float, end: float) -> Audio:
        """The part between ``start`` and ``end`` seconds (a view, not a copy)."""
        lo = max(0, round(start * self.sample_rate))
        hi = min(len(self.samples), round(end * self.sample_rate))
        return Audio(self.samples[lo : max(lo, hi)], self.sample_rate)


class Recording(Protocol):
    """A session's audio read a slice at a time: an :class:`Audio` itself, or a recording
    still in its chunks (a live session's finish decodes only the slices it needs)."""

    @property
    def duration(self) -> float: ...

    def slice(self, start: float, end: float) -> Audio: ...


@dataclass(frozen=True)
class SpeakerHints:
    """What the user told us about the number of speakers; all optional."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None


@dataclass(frozen=True)
class SpeakerTurn:
    """One stretch of speech by one speaker (``SPEAKER_00``, ``SPEAKER_01``...)."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class SpeakerVoice:
    """One speaker's voice as one embedder hears it: comparable only within one ``embedder``."""

    speaker: str  # the diarizer's label for the speaker (after canonical relabelling)
    embedding: tuple[float, ...]  # unit length
    embedder: str  # "<model>@<version>"
    seconds: float  # speech behind it
    # what it was heard from (a digest of its pieces' times; "": not known), so that the same
    # session processed again reuses a voice heard from the same speech
    heard_from: str = ""


@dataclass(frozen=True)
class Word:
    """One recognised word with its times; ``text`` as the ASR wrote it (may carry
    punctuation and a leading space)."""

    start: float
    end: float
    text: str
    probability: float = 1.0


@dataclass(frozen=True)
class TranscriptSegment:
    """A stretch of recognised speech as the ASR split it (a sentence or so)."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...]


@dataclass(frozen=True)
class Utterance:
    """Consecutive words of one speaker: the unit shown in the transcript and tagged
    with an emotion."""

    speaker: str
    start: float
    end: float
    words: tuple[Word, ...]

    @property
    def text(self) -> str:
        return "".join(w.text for w in self.words).strip()


@dataclass(frozen=True)
class Emotion:
    """One label of the seven (anger, disgust, fear, joy, neutral, sadness, surprise),
    its probability, and the full distribution (sums to 1)."""

    label: str
    score: float
    scores: Mapping[str, float] = field(default_factory=dict)


EMOTION_LABELS: tuple[str, ...] = (
    "anger",
    "disgust",
    "fear",
    "joy",
    "neutral",
    "sadness",
    "surprise",
)
