"""Who spoke when: speaker turns from 16 kHz mono float32 audio.

``load_diarizer(settings)`` builds one of the backends; ``diarize(audio, diarizer, hints)``
applies it and returns ``SpeakerTurn`` values sorted by start, labelled ``SPEAKER_00``,
``SPEAKER_01``... in order of first appearance. Times are seconds. ``hear_speakers`` is the
same verb with everything a backend may give besides (a :class:`Diarization`): an exclusive
view for word assignment and each speaker's voice embedding.

- ``auto`` (default): ``resemblyzer`` for close speech, ``bundled`` for a recording that
  sounds distant (:class:`RoomAwareDiarizer`).
- ``bundled`` (CPU or CUDA, offline): pyannote segmentation-3.0 + CAM++ embeddings,
  clustered in pyannote's manner (``services.bundled_diarizer``); hears overlap and distant
  talkers.
- ``resemblyzer`` (CPU, offline): Silero VAD (the ONNX model bundled with
  faster-whisper) finds speech; Resemblyzer d-vectors are taken on 1.6 s windows every 0.4 s
  inside it; average-linkage clustering on cosine distance groups them; each 10 ms frame then
  goes to the speaker centroid its covering windows resemble most.
- ``pyannote``: a pyannote.audio 4 pipeline (the ``pyannote`` extra), fed the waveform in
  memory: ``pyannote/speaker-diarization-community-1`` (recommended: VBx clustering, an
  exclusive view, speaker embeddings) or ``pyannote/speaker-diarization-3.1``, by hub id or
  as a local clone of the model repository (docs/DEPLOYMENT.md, "pyannote offline").
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import structlog
from scipy.cluster.hierarchy import fcluster, linkage

from config import Settings
from services.device import resolve_device
from services.domain import (
    SAMPLE_RATE,
    Audio,
    ProgressCallback,
    SpeakerHints,
    SpeakerTurn,
    SpeakerVoice,
    no_progress,
)

if TYPE_CHECKING:
    from pyannote.core import Annotation

log = structlog.get_logger(__name__)

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

# --- resemblyzer backend tuning ----------------------------------------------------------
# Silero VAD on the shared corpus (collar 0): at 0.5 it misses 23 % of the far-field AMI
# speech (3 % of the clean), at 0.25 14 % (1 %), for 4.3 % false alarm on clean speech
# instead of 2.7 %.
VAD_THRESHOLD = 0.25
VAD_MIN_SILENCE_MS = 300
VAD_PAD_MS = 60
VAD_MIN_SPEECH_MS = 200

FRAMES_PER_SECOND = 100  # Resemblyzer's mel frames are 10 ms apart.
SAMPLES_PER_FRAME = SAMPLE_RATE // FRAMES_PER_SECOND
WINDOW_FRAMES = 160  # 1.6 s: the partial-utterance length the encoder was trained on.
HOP_FRAMES = 40
MIN_WINDOW_FRAMES = 50  # shorter speech regions are labelled from their neighbours
EMBED_BATCH = 64

# Average cosine distance below which two groups of windows are one speaker. Same-speaker
# windows sit near 0.8 cosine similarity, different speakers near 0.6 (0.45-0.85). Measured
# against an eigengap (NME spectral) estimate and a silhouette choice, this threshold plus
# the share floor below was the only one to find the right count on every clean recording,
# and the best on AMI; 0.25 and 0.35 are both clearly worse.
SAME_SPEAKER_DISTANCE = 0.3
# A speaker must own this share of the windows (capped at MAX_SPEAKER_FLOOR windows, 8 s)
# to count; smaller groups are stray windows (laughs, overlap) folded into their nearest.
MIN_SPEAKER_SHARE = 0.1
MAX_SPEAKER_FLOOR = 20
MAX_CLUSTERED_WINDOWS = 3000  # the linkage is O(n^2) memory; beyond this, subsample
REFINE_ITERATIONS = 5
MIN_RUN_FRAMES = 30  # speaker changes shorter than 0.3 s are absorbed by a neighbour

# Either backend: a speaker needs this much speech (s) in the session to be returned at all.
# Less is too little to tell a voice by, or to play as a sample anyone could recognise as
# theirs, so it is never offered for claiming; the words said then go to the nearest speaker
# who remains (services.assignment), and a session with no such speaker has no speakers.
MIN_SPEAKER_S = 1.0

# Share of this stage's progress reached after each step of the resemblyzer backend.
_VAD_DONE, _EMBED_DONE, _CLUSTER_DONE = 0.1, 0.9, 0.95


class DiarizationError(RuntimeError):
    """The diarization stage could not load or run its model."""


@dataclass(frozen=True)
class SpeakerRange:
    """How many speakers to find: exactly ``minimum`` when it equals ``maximum``."""

    minimum: int
    maximum: int

    @property
    def exact(self) -> bool:
        return self.minimum == self.maximum


@dataclass(frozen=True)
class FoundSpeakers:
    """A backend's answer when it has more than turns; labels are the backend's own.
    ``exclusive``: at most one speaker at any time (None: the backend has no such view)."""

    turns: Sequence[SpeakerTurn]
    exclusive: Sequence[SpeakerTurn] | None = None
    voices: Sequence[SpeakerVoice] = ()


@dataclass(frozen=True)
class Diarization:
    """What diarization heard, labels canonical and shared by all three views.

    ``turns``: overlapped speech stays overlapped (talk time, sample clips); ``exclusive``:
    at most one speaker at a time, what words are given to (``turns`` itself when the
    backend has no exclusive view); ``voices``: each speaker's embedding as the backend's
    own embedder made it (empty when it returns none)."""

    turns: tuple[SpeakerTurn, ...]
    exclusive: tuple[SpeakerTurn, ...]
    voices: tuple[SpeakerVoice, ...] = ()


class Diarizer(Protocol):
    """A loaded diarization model; ``diarize()`` is the verb that applies it."""

    max_speakers_default: int
    # whether it was built for distant, reverberant, overlapped speech (a phone on a table);
    # a session that sounds distant on a backend that was not gets a warning
    hears_far_field: bool

    def find_turns(
        self, audio: Audio, speakers: SpeakerRange, on_progress: ProgressCallback
    ) -> Sequence[SpeakerTurn] | FoundSpeakers:
        """Turns with backend-specific labels, in any order (with the exclusive view and
        the voices, when the backend has them)."""
        ...


def load_diarizer(settings: Settings) -> Diarizer:
    """Load the backend ``settings.diarization_backend`` names on ``settings.device``."""
    device = resolve_device(settings.device)
    if settings.diarization_backend == "pyannote":
        pipeline = _load_pyannote_pipeline(settings, device)
        return PyannoteDiarizer(pipeline, settings, pyannote_embedder(settings))
    from services.bundled_diarizer import BundledDiarizer

    if settings.diarization_backend == "resemblyzer":
        return ResemblyzerDiarizer.load(device, settings.max_speakers_default)
    if settings.diarization_backend == "bundled":
        return BundledDiarizer.load(device, settings.max_speakers_default)
    return RoomAwareDiarizer(
        close=ResemblyzerDiarizer.load(device, settings.max_speakers_default),
        distant=BundledDiarizer.load(device, settings.max_speakers_default),
    )


class RoomAwareDiarizer:
    """The default (``auto``): each recording goes to the backend that suits its room.

    Close speech goes to ``close`` (Resemblyzer: the best on clean conversations and on
    generated voices, a third of the CPU); a recording that :func:`sounds_distant` goes to
    ``distant`` (segmentation-3.0 + CAM++: far better on real far-field meetings, worse at
    telling synthetic voices apart). Both are loaded once; BENCHMARKS.md "Far-field" has
    the figures behind the split."""

    hears_far_field = True

    def __init__(self, close: Diarizer, distant: Diarizer) -> None:
        self.close = close
        self.distant = distant
        self.max_speakers_default = close.max_speakers_default

    def choose(self, audio: Audio) -> Diarizer:
        return self.distant if sounds_distant(audio) else self.close

    def find_turns(
        self, audio: Audio, speakers: SpeakerRange, on_progress: ProgressCallback
    ) -> Sequence[SpeakerTurn] | FoundSpeakers:
        chosen = self.choose(audio)
        log.info("diarizer chosen for the room", backend=type(chosen).__name__)
        return chosen.find_turns(audio, speakers, on_progress)


def diarize(
    audio: Audio,
    diarizer: Diarizer,
    hints: SpeakerHints = SpeakerHints(),
    on_progress: ProgressCallback = no_progress,
) -> tuple[SpeakerTurn, ...]:
    """Speaker turns of ``audio`` (16 kHz mono float32), sorted by start, labelled
    ``SPEAKER_00``... by first appearance; adjacent turns of one speaker are merged.

    ``hints.num_speakers`` is honoured exactly (fewer only when there is too little speech
    to tell that many apart); otherwise the count is estimated within
    ``[min_speakers, max_speakers]``, ``max_speakers`` defaulting to the diarizer's
    ``max_speakers_default``. Every speaker returned has at least MIN_SPEAKER_S seconds of
    turns; silent or empty audio, or too little speech, gives no turns.
    """
    return hear_speakers(audio, diarizer, hints, on_progress).turns


def hear_speakers(
    audio: Audio,
    diarizer: Diarizer,
    hints: SpeakerHints = SpeakerHints(),
    on_progress: ProgressCallback = no_progress,
) -> Diarization:
    """:func:`diarize`, with the exclusive view and the voices the backend gives besides,
    all relabelled as the turns are; a dropped minor speaker's voice is dropped too."""
    if audio.sample_rate != SAMPLE_RATE:
        raise ValueError(f"diarization needs {SAMPLE_RATE} Hz audio, got {audio.sample_rate}")
    speakers = speaker_range(hints, diarizer.max_speakers_default)
    answer = diarizer.find_turns(audio, speakers, on_progress)
    return _canonical(answer, on_progress)


def canonical_diarization(found: FoundSpeakers) -> Diarization:
    """``found`` with its labels made canonical in all three views, as :func:`diarize` gives
    them (for a step that changes a diarization's speakers afterwards)."""
    return _canonical(found, no_progress)


def _canonical(
    answer: Sequence[SpeakerTurn] | FoundSpeakers, on_progress: ProgressCallback
) -> Diarization:
    """A backend's answer with its labels made canonical in all three views."""
    found = answer if isinstance(answer, FoundSpeakers) else FoundSpeakers(answer)
    first = first_appearance_names(found.turns)
    found_turns = _merged(_renamed(found.turns, first))
    turns = canonical_turns(without_minor_speakers(found_turns, MIN_SPEAKER_S))
    kept = first_appearance_names(without_minor_speakers(found_turns, MIN_SPEAKER_S))
    names = {raw: kept[name] for raw, name in first.items() if name in kept}
    exclusive = turns if found.exclusive is None else _merged(_renamed(found.exclusive, names))
    voices = tuple(replace(v, speaker=names[v.speaker]) for v in found.voices if v.speaker in names)
    on_progress(1.0)
    return Diarization(turns, exclusive, voices)


# --- a session heard a stretch at a time (live sessions) ---------------------------------


@dataclass(frozen=True)
class SpanVoices:
    """What a span-wise backend keeps of one stretch of a session (a chunk job's share):
    its arrays (times in seconds from the stretch's start) under the backend's ``backend``
    name. Stored as bytes (:meth:`to_bytes`) and clustered with the session's other stretches
    at the end (:func:`diarize_spans`), so no audio is needed then."""

    backend: str
    arrays: Mapping[str, npt.NDArray[Any]]

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.arrays[name]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {"__backend__": np.array(self.backend), **self.arrays}
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SpanVoices:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files if name != "__backend__"}
            return cls(str(stored["__backend__"]), arrays)


# (offset of the stretch in session seconds, what the backend kept of it)
PlacedVoices = tuple[float, SpanVoices]


# How much of the session's audio before a stretch a span diarizer is given as context: the
# bundled backend's first windows of a stretch reach back WINDOW_S - STEP_S (10 - 2.5 s).
SPAN_LEAD_IN_S = 7.5
# Resemblyzer takes the lead-in only when the stretch's first speech region starts within
# this of its start (the cut fell inside speech; cut in a pause, it starts 0.16 s in or later).
SPEECH_AT_START_S = 0.1


class SpanDiarizer(Protocol):
    """A backend that can look at a session one stretch at a time and decide at the end."""

    name: str  # SpanVoices.backend of what it keeps
    max_speakers_default: int
    hears_far_field: bool

    def hear_span(self, audio: Audio, lead_in: Audio | None = None) -> SpanVoices:
        """Everything clustering needs of ``audio`` (one stretch); ``lead_in``: the audio
        just before it (up to SPAN_LEAD_IN_S; None at the session's start), context only:
        what is kept belongs to the stretch, so no second of a session is kept twice."""
        ...

    def turns_from_spans(
        self,
        spans: Sequence[PlacedVoices],
        duration: float,
        speakers: SpeakerRange,
        on_progress: ProgressCallback,
    ) -> Sequence[SpeakerTurn] | FoundSpeakers:
        """Turns of the whole session (``duration`` seconds) from its stretches."""
        ...


def span_diarizer(diarizer: Diarizer, room: RoomStats) -> SpanDiarizer | None:
    """The backend that hears a session of this ``room`` a stretch at a time: the room-aware
    default's choice for the room, resemblyzer or bundled themselves; None for a backend
    that needs the whole recording at once (pyannote)."""
    if isinstance(diarizer, RoomAwareDiarizer):
        return span_diarizer(diarizer.distant if room.distant else diarizer.close, room)
    from services.bundled_diarizer import BundledDiarizer

    if isinstance(diarizer, ResemblyzerDiarizer | BundledDiarizer):
        return diarizer
    return None


def diarize_spans(
    spans: Sequence[PlacedVoices],
    duration: float,
    diarizer: SpanDiarizer,
    hints: SpeakerHints = SpeakerHints(),
    on_progress: ProgressCallback = no_progress,
) -> Diarization:
    """:func:`hear_speakers` of a session from what ``diarizer`` kept of each of its stretches
    (all of them ``diarizer.name``'s), with no audio: labels canonical, minor speakers dropped."""
    wrong = {v.backend for _, v in spans} - {diarizer.name}
    if wrong:
        raise ValueError(f"stretches heard by {sorted(wrong)} given to {diarizer.name}")
    speakers = speaker_range(hints, diarizer.max_speakers_default)
    answer = diarizer.turns_from_spans(spans, duration, speakers, on_progress)
    return _canonical(answer, on_progress)


# The share of speech frames (Silero VAD probability above 0.2) that the VAD is unsure of
# (below 0.8) beyond which a recording sounds distant or noisy: clean close speech measured
# 0.07-0.18 (corpus conversations, generated Singlish, the demo), far-field meetings and
# simulated rooms 0.09-1.0 (medians 0.34 and 0.26). A warning, not a verdict.
DISTANT_UNSURE_SHARE = 0.25
MIN_SPEECH_FOR_ROOM_S = 5.0

FAR_FIELD_WARNING = (
    "this recording sounds distant or noisy (a phone far from the talkers?), and the default "
    "speaker separation is unreliable there: who said what may be wrong. Set "
    "DIARIZATION_BACKEND=bundled (offline) or pyannote for such rooms"
)


VAD_FRAME = 512  # Silero's window at 16 kHz


@dataclass(frozen=True)
class RoomStats:
    """How sure Silero VAD was of the speech in some audio, in its 32 ms frames: enough to
    tell a distant or noisy room (:attr:`distant`), and to add up over a session's chunks."""

    speech_frames: int = 0  # probability above 0.2
    unsure_frames: int = 0  # of those, below 0.8

    def __add__(self, other: RoomStats) -> RoomStats:
        return RoomStats(
            self.speech_frames + other.speech_frames, self.unsure_frames + other.unsure_frames
        )

    @property
    def distant(self) -> bool:
        if self.speech_frames * VAD_FRAME / SAMPLE_RATE < MIN_SPEECH_FOR_ROOM_S:
            return False
        return self.unsure_frames / self.speech_frames > DISTANT_UNSURE_SHARE


def room_of(audio: Audio) -> RoomStats:
    """:class:`RoomStats` of ``audio``, from Silero VAD (bundled with faster-whisper)."""
    from faster_whisper.vad import get_vad_model

    samples = np.ascontiguousarray(audio.samples, np.float32)
    if len(samples) < VAD_FRAME:
        return RoomStats()
    padded = np.pad(samples, (0, -len(samples) % VAD_FRAME))
    probability = np.asarray(get_vad_model()(padded)).reshape(-1)
    speech = probability > 0.2
    return RoomStats(int(speech.sum()), int((speech & (probability < 0.8)).sum()))


def sounds_distant(audio: Audio) -> bool:
    """Whether the recording's speech sounds distant or noisy, judged by how unsure Silero VAD
    (bundled with faster-whisper) is of it; needs MIN_SPEECH_FOR_ROOM_S of speech."""
    return room_of(audio).distant


def without_minor_speakers(
    turns: Sequence[SpeakerTurn], min_seconds: float
) -> tuple[SpeakerTurn, ...]:
    """The turns of speakers whose turns add up to at least ``min_seconds`` (give it
    canonical turns: a speaker's overlapping turns would count twice)."""
    talk: dict[str, float] = {}
    for turn in turns:
        talk[turn.speaker] = talk.get(turn.speaker, 0.0) + turn.duration
    return tuple(t for t in turns if talk[t.speaker] >= min_seconds)


def speaker_range(hints: SpeakerHints, default_max: int) -> SpeakerRange:
    """The speaker count to search, from the user's hints and the deployment's cap."""
    if hints.num_speakers is not None:
        if hints.num_speakers < 1:
            raise ValueError("num_speakers must be at least 1")
        return SpeakerRange(hints.num_speakers, hints.num_speakers)
    minimum = max(1, hints.min_speakers or 1)
    maximum = hints.max_speakers if hints.max_speakers is not None else max(default_max, minimum)
    if maximum < minimum:
        raise ValueError(f"max_speakers ({maximum}) is below min_speakers ({minimum})")
    return SpeakerRange(minimum, maximum)


def canonical_turns(turns: Iterable[SpeakerTurn]) -> tuple[SpeakerTurn, ...]:
    """Sort by start, drop empty turns, rename speakers ``SPEAKER_00``... by first
    appearance, and merge turns of one speaker that touch or overlap."""
    turns = tuple(turns)
    return _merged(_renamed(turns, first_appearance_names(turns)))


def first_appearance_names(turns: Iterable[SpeakerTurn]) -> dict[str, str]:
    """``{label: "SPEAKER_00"...}`` in order of first appearance (empty turns ignored)."""
    names: dict[str, str] = {}
    for turn in _ordered(turns):
        names.setdefault(turn.speaker, f"SPEAKER_{len(names):02d}")
    return names


def _ordered(turns: Iterable[SpeakerTurn]) -> list[SpeakerTurn]:
    return sorted((t for t in turns if t.end > t.start), key=lambda t: (t.start, t.end))


def _renamed(turns: Iterable[SpeakerTurn], names: Mapping[str, str]) -> list[SpeakerTurn]:
    """The turns of the speakers in ``names``, renamed; the others' are dropped."""
    return [replace(t, speaker=names[t.speaker]) for t in turns if t.speaker in names]


def _merged(turns: Iterable[SpeakerTurn]) -> tuple[SpeakerTurn, ...]:
    """Sorted by start, empty turns dropped, touching or overlapping turns of one speaker
    merged; labels unchanged."""
    merged: list[SpeakerTurn] = []
    last_by_speaker: dict[str, int] = {}
    for turn in _ordered(turns):
        last = last_by_speaker.get(turn.speaker)
        if last is not None and merged[last].end >= turn.start - 1e-6:
            merged[last] = replace(merged[last], end=max(merged[last].end, turn.end))
            continue
        last_by_speaker[turn.speaker] = len(merged)
        merged.append(turn)
    return tuple(merged)


def turns_from_annotation(annotation: Annotation) -> tuple[SpeakerTurn, ...]:
    """Canonical turns from a ``pyannote.core.Annotation`` (what pyannote 3.x returns, and
    4.x's ``DiarizeOutput.speaker_diarization``). Overlapping speakers stay overlapping."""
    return canonical_turns(_raw_turns(annotation))


def _raw_turns(annotation: Annotation) -> list[SpeakerTurn]:
    return [
        SpeakerTurn(float(segment.start), float(segment.end), str(label))
        for segment, _, label in annotation.itertracks(yield_label=True)
    ]


# --- resemblyzer backend -----------------------------------------------------------------


class ResemblyzerDiarizer:
    """VAD + Resemblyzer d-vectors + clustering; runs offline on the CPU (see module doc)."""

    def __init__(self, encoder: Any, max_speakers_default: int) -> None:
        self.encoder = encoder  # resemblyzer.VoiceEncoder, weights bundled in the wheel
        self.name = f"resemblyzer@{_version('resemblyzer')}"
        self.max_speakers_default = max_speakers_default
        self.hears_far_field = False  # BENCHMARKS.md "Far-field": 55 % DER on unseen AMI

    @classmethod
    def load(cls, device: str, max_speakers_default: int) -> ResemblyzerDiarizer:
        """Load the bundled encoder weights and the VAD model."""
        from faster_whisper.vad import get_vad_model
        from resemblyzer import VoiceEncoder

        get_vad_model()  # cached by faster-whisper; loading it here keeps the first call fast
        return cls(VoiceEncoder(device, verbose=False), max_speakers_default)

    def find_turns(
        self, audio: Audio, speakers: SpeakerRange, on_progress: ProgressCallback
    ) -> list[SpeakerTurn]:
        regions = speech_regions(audio.samples)
        on_progress(_VAD_DONE)
        if not regions:
            return []
        mel = _mel_frames(audio.samples, regions)
        windows = _windows(regions, len(mel))
        embeddings = self._embed(mel, windows, on_progress)
        labels = cluster_windows(embeddings, speakers)
        on_progress(_CLUSTER_DONE)
        frame_labels = _frame_labels(windows, embeddings, labels, len(mel))
        return _turns_in_regions(frame_labels, regions)

    def hear_span(self, audio: Audio, lead_in: Audio | None = None) -> SpanVoices:
        """Speech regions (samples), windows (10 ms frames) and their d-vectors, from the
        stretch's start: the find_turns steps before clustering.

        Only when the stretch's speech touches its start (the chunk's cut fell inside speech,
        as in far-field rooms where the VAD hears speech almost throughout) do the VAD and
        the windows run over ``lead_in`` and the stretch together, so that speech is one
        region (its part in the stretch is kept; :meth:`turns_from_spans` joins it to the
        previous stretch's) and the windows that end inside the stretch are kept whole, even
        those reaching back over its start (those start before 0). A stretch that starts in
        a pause (close speech) is heard on its own: a lead-in there changed only the VAD's
        state and the gain, and with them the count estimate on some conversations."""
        regions = speech_regions(audio.samples)
        windows: list[tuple[int, int]] = []
        embeddings = np.zeros((0, 256), dtype=np.float32)
        if lead_in is not None and regions and regions[0][0] <= SPEECH_AT_START_S * SAMPLE_RATE:
            regions, windows, embeddings = self._heard_with_lead_in(audio, lead_in)
        elif regions:
            mel = _mel_frames(audio.samples, regions)
            windows = _windows(regions, len(mel))
            embeddings = self._embed(mel, windows, no_progress)
        return SpanVoices(
            self.name,
            {
                "regions": np.asarray(regions, dtype=np.int64).reshape(-1, 2),
                "windows": np.asarray(windows, dtype=np.int64).reshape(-1, 2),
                "embeddings": embeddings,
            },
        )

    def _heard_with_lead_in(
        self, audio: Audio, lead_in: Audio
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]], FloatArray]:
        """hear_span's regions, windows and d-vectors from the VAD and the windows over up to
        SPAN_LEAD_IN_S of ``lead_in`` and ``audio`` together, in the stretch's samples and
        frames: the regions' parts inside it, the windows that end inside it."""
        before = lead_in.samples
        lead = min(len(before), round(SPAN_LEAD_IN_S * SAMPLE_RATE))
        lead -= lead % SAMPLES_PER_FRAME  # the stretch starts on a mel frame
        whole = np.concatenate([before[len(before) - lead :], audio.samples]).astype(np.float32)
        heard = speech_regions(whole)
        regions = [(max(a, lead) - lead, b - lead) for a, b in heard if b > lead]
        if not regions:
            return [], [], np.zeros((0, 256), dtype=np.float32)
        mel = _mel_frames(whole, heard)
        first = lead // SAMPLES_PER_FRAME
        windows = [(a, b) for a, b in _windows(heard, len(mel)) if b > first]
        embeddings = self._embed(mel, windows, no_progress)
        return regions, [(a - first, b - first) for a, b in windows], embeddings

    def turns_from_spans(
        self,
        spans: Sequence[PlacedVoices],
        duration: float,
        speakers: SpeakerRange,
        on_progress: ProgressCallback,
    ) -> list[SpeakerTurn]:
        """find_turns' clustering and labelling over the stretches' windows, each moved to
        its place in the session."""
        regions: list[tuple[int, int]] = []
        windows: list[tuple[int, int]] = []
        embeddings = []
        for offset, voices in sorted(spans, key=lambda placed: placed[0]):
            at_sample = round(offset * SAMPLE_RATE)
            at_frame = round(offset * FRAMES_PER_SECOND)
            regions.extend((int(a) + at_sample, int(b) + at_sample) for a, b in voices["regions"])
            windows.extend(
                (max(0, int(a) + at_frame), int(b) + at_frame) for a, b in voices["windows"]
            )
            embeddings.append(voices["embeddings"])
        on_progress(_VAD_DONE)
        if not windows:
            return []
        n_frames = round(duration * FRAMES_PER_SECOND) + 1
        vectors = np.concatenate(embeddings).astype(np.float32)
        labels = cluster_windows(vectors, speakers)
        on_progress(_CLUSTER_DONE)
        frame_labels = _frame_labels(windows, vectors, labels, n_frames)
        return _turns_in_regions(frame_labels, _joined(regions))

    def _embed(
        self, mel: FloatArray, windows: list[tuple[int, int]], on_progress: ProgressCallback
    ) -> FloatArray:
        """Unit-length d-vectors, shape (n_windows, 256). Full-length windows go in batches;
        the few shorter ones (short speech regions) one at a time."""
        import torch

        out = np.zeros((len(windows), 256), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for i, (a, b) in enumerate(windows):
            by_length.setdefault(b - a, []).append(i)
        done = 0
        with torch.inference_mode():
            for group in by_length.values():
                for lo in range(0, len(group), EMBED_BATCH):
                    batch = group[lo : lo + EMBED_BATCH]
                    mels = np.stack([mel[windows[i][0] : windows[i][1]] for i in batch])
                    tensor = torch.from_numpy(mels).to(self.encoder.device)
                    out[batch] = self.encoder(tensor).cpu().numpy()
                    done += len(batch)
                    on_progress(_VAD_DONE + (_EMBED_DONE - _VAD_DONE) * done / len(windows))
        return out


def _joined(regions: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted regions, those that touch (within a mel frame: speech going on across the edge
    between two stretches) joined into one."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(regions):
        if out and a - out[-1][1] <= SAMPLES_PER_FRAME:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def speech_regions(samples: FloatArray) -> list[tuple[int, int]]:
    """Speech as ``(start, end)`` sample indices, from the Silero VAD bundled with
    faster-whisper (no download)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if len(samples) < SAMPLES_PER_FRAME:
        return []
    options = VadOptions(
        threshold=VAD_THRESHOLD,
        min_silence_duration_ms=VAD_MIN_SILENCE_MS,
        speech_pad_ms=VAD_PAD_MS,
        min_speech_duration_ms=VAD_MIN_SPEECH_MS,
    )
    stamps = get_speech_timestamps(np.ascontiguousarray(samples, np.float32), options)
    return [(int(s["start"]), int(s["end"])) for s in stamps if s["end"] > s["start"]]


def _mel_frames(samples: FloatArray, regions: list[tuple[int, int]]) -> FloatArray:
    """Resemblyzer's 40-band mel power spectrogram, shape (n_frames, 40), 10 ms frames,
    after raising quiet audio so its speech sits at -30 dBFS as in the encoder's training."""
    from resemblyzer.audio import wav_to_mel_spectrogram

    speech = np.concatenate([samples[a:b] for a, b in regions])
    rms = float(np.sqrt(np.mean(np.square(speech, dtype=np.float64))))
    gain = max(1.0, 10 ** (-30 / 20) / rms) if rms > 0 else 1.0
    mel: FloatArray = wav_to_mel_spectrogram((samples * gain).astype(np.float32))
    return mel


def _windows(regions: list[tuple[int, int]], n_frames: int) -> list[tuple[int, int]]:
    """Embedding windows as ``(first, end)`` mel frames: WINDOW_FRAMES long every HOP_FRAMES
    inside each speech region, the last one flush with the region's end; a region shorter
    than a window but at least MIN_WINDOW_FRAMES is one window of its own length."""
    frames = [
        (a // SAMPLES_PER_FRAME, min(n_frames, -(-b // SAMPLES_PER_FRAME))) for a, b in regions
    ]
    out: list[tuple[int, int]] = []
    for a, b in frames:
        if b - a < WINDOW_FRAMES:
            if b - a >= MIN_WINDOW_FRAMES:
                out.append((a, b))
            continue
        starts = list(range(a, b - WINDOW_FRAMES + 1, HOP_FRAMES))
        if starts[-1] + WINDOW_FRAMES < b:
            starts.append(b - WINDOW_FRAMES)
        out.extend((s, s + WINDOW_FRAMES) for s in starts)
    # All speech in short bursts: embed each burst whatever its length rather than nothing.
    return out or [(a, b) for a, b in frames if b > a]


# --- clustering --------------------------------------------------------------------------


def cluster_windows(embeddings: FloatArray, speakers: SpeakerRange) -> IntArray:
    """A speaker index per window (unit-length embeddings, shape (n, d)).

    Average-linkage clustering on cosine distance, cut at SAME_SPEAKER_DISTANCE (or at the
    exact count asked for); groups too small to be a speaker are folded into their nearest;
    then a few k-means steps on all windows against the speaker centroids."""
    n = len(embeddings)
    if n < 2 or speakers.maximum == 1:
        return np.zeros(n, dtype=np.int64)
    sample = np.unique(np.linspace(0, n - 1, min(n, MAX_CLUSTERED_WINDOWS)).astype(np.int64))
    labels = _cut_tree(embeddings[sample], speakers)
    return _refine(embeddings, _centroids(embeddings[sample], labels))


def _cut_tree(embeddings: FloatArray, speakers: SpeakerRange) -> IntArray:
    tree = linkage(embeddings, method="average", metric="cosine")
    floor = max(2.0, min(MIN_SPEAKER_SHARE * len(embeddings), MAX_SPEAKER_FLOOR))
    if not speakers.exact:
        labels = fcluster(tree, SAME_SPEAKER_DISTANCE, criterion="distance")
        found = _count_at_least(labels, floor)
        target = min(max(found, speakers.minimum), speakers.maximum)
        if target == found:
            return _fold_small(embeddings, labels, floor, keep=target)
    else:
        target = speakers.minimum
    target = min(target, len(embeddings))
    return _fold_small(embeddings, _cut_for(tree, target, floor), np.inf, keep=target)


def _cut_for(tree: Any, target: int, floor: float) -> IntArray:
    """The coarsest cut of the tree with ``target`` groups of at least ``floor`` windows
    (stray small groups beside them are folded in afterwards)."""
    n = len(tree) + 1
    for n_clusters in range(target, n + 1):
        labels = fcluster(tree, n_clusters, criterion="maxclust")
        if _count_at_least(labels, floor) >= target:
            return np.asarray(labels, dtype=np.int64)
    return np.asarray(fcluster(tree, target, criterion="maxclust"), dtype=np.int64)


def _count_at_least(labels: IntArray, floor: float) -> int:
    return int((np.unique(labels, return_counts=True)[1] >= floor).sum())


def _fold_small(embeddings: FloatArray, labels: IntArray, floor: float, keep: int) -> IntArray:
    """Fold the smallest group into the others (each window to its nearest centroid) while
    it has fewer than ``floor`` windows and more than ``keep`` groups remain."""
    labels = np.asarray(labels, dtype=np.int64).copy()
    while True:
        ids, counts = np.unique(labels, return_counts=True)
        smallest = int(np.argmin(counts))
        if len(ids) <= max(keep, 1) or counts[smallest] >= floor:
            return np.unique(labels, return_inverse=True)[1].astype(np.int64)
        others = np.delete(ids, smallest)
        members = labels == ids[smallest]
        centroids = np.stack([_unit(embeddings[labels == i].mean(0)) for i in others])
        labels[members] = others[np.argmax(embeddings[members] @ centroids.T, axis=1)]


def _refine(embeddings: FloatArray, centroids: FloatArray) -> IntArray:
    """K-means steps on the unit sphere from ``centroids``; stops early when nothing moves
    or a speaker would lose all its windows."""
    labels = np.argmax(embeddings @ centroids.T, axis=1)
    for _ in range(REFINE_ITERATIONS):
        if len(np.unique(labels)) < len(centroids):
            break
        centroids = _centroids(embeddings, labels)
        moved = np.argmax(embeddings @ centroids.T, axis=1)
        if np.array_equal(moved, labels) or len(np.unique(moved)) < len(centroids):
            break
        labels = moved
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def _centroids(embeddings: FloatArray, labels: IntArray) -> FloatArray:
    """Unit-length mean embedding per label 0..max(labels), shape (n_labels, d)."""
    return np.stack([_unit(embeddings[labels == k].mean(0)) for k in range(labels.max() + 1)])


def _unit(vector: FloatArray) -> FloatArray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


# --- from window labels to turns ---------------------------------------------------------


def _frame_labels(
    windows: Sequence[tuple[int, int]], embeddings: FloatArray, labels: IntArray, n_frames: int
) -> IntArray:
    """A speaker per 10 ms frame: the centroid most similar to the covering windows,
    each window weighted by a triangle peaking at its centre; -1 where no window covers."""
    centroids = _centroids(embeddings, labels)
    similarity = embeddings @ centroids.T  # (n_windows, n_speakers)
    score = np.zeros((n_frames, len(centroids)), dtype=np.float32)
    covered = np.zeros(n_frames, dtype=bool)
    for (a, b), row in zip(windows, similarity, strict=True):
        half = (b - a) / 2
        weight = 1.0 - np.abs(np.arange(a, b) + 0.5 - (a + half)) / (half + 1)
        score[a:b] += weight[:, None] * row[None, :]
        covered[a:b] = True
    return np.where(covered, np.argmax(score, axis=1), -1).astype(np.int64)


def _turns_in_regions(
    frame_labels: IntArray, regions: Sequence[tuple[int, int]]
) -> list[SpeakerTurn]:
    """Runs of one speaker inside each speech region (given in samples); frames no window
    covers take the nearest covered frame's speaker."""
    covered = np.flatnonzero(frame_labels >= 0)
    turns: list[SpeakerTurn] = []
    for start, end in regions:
        a = start // SAMPLES_PER_FRAME
        b = max(a + 1, min(len(frame_labels), -(-end // SAMPLES_PER_FRAME)))
        frames = np.arange(a, b)
        after = np.clip(np.searchsorted(covered, frames), 0, len(covered) - 1)
        before = np.clip(after - 1, 0, len(covered) - 1)
        closer_before = np.abs(covered[before] - frames) < np.abs(covered[after] - frames)
        labels = frame_labels[np.where(closer_before, covered[before], covered[after])]
        labels = _absorb_short_runs(labels, MIN_RUN_FRAMES)
        turns.extend(_runs_to_turns(labels, a, start, end))
    return turns


def _absorb_short_runs(labels: IntArray, min_frames: int) -> IntArray:
    """Give each run shorter than ``min_frames`` (shortest first) to its longer neighbour."""
    labels = labels.copy()
    while True:
        starts = np.flatnonzero(np.diff(labels, prepend=labels[0] - 1))
        if len(starts) < 2:
            return labels
        ends = np.append(starts[1:], len(labels))
        lengths = ends - starts
        i = int(np.argmin(lengths))
        if lengths[i] >= min_frames:
            return labels
        left = i > 0 and (i == len(starts) - 1 or lengths[i - 1] >= lengths[i + 1])
        labels[starts[i] : ends[i]] = labels[starts[i - 1] if left else starts[i + 1]]


def _runs_to_turns(labels: IntArray, first_frame: int, start: int, end: int) -> list[SpeakerTurn]:
    """One turn per run of equal labels; the region's own sample bounds clip the ends."""
    starts = np.flatnonzero(np.diff(labels, prepend=labels[0] - 1))
    bounds = [*(first_frame + int(s) for s in starts), first_frame + len(labels)]
    turns = []
    for i, s in enumerate(starts):
        t0 = max(start, bounds[i] * SAMPLES_PER_FRAME) / SAMPLE_RATE
        t1 = min(end, bounds[i + 1] * SAMPLES_PER_FRAME) / SAMPLE_RATE
        turns.append(SpeakerTurn(t0, t1, str(int(labels[s]))))
    return turns


# --- pyannote backend --------------------------------------------------------------------

# Share of this stage's progress covered by each step the pyannote pipeline reports.
_PYANNOTE_STEPS = {
    "segmentation": (0.0, 0.4),
    "speaker_counting": (0.4, 0.45),
    "embeddings": (0.45, 0.95),
    "discrete_diarization": (0.95, 1.0),
}


class PyannoteDiarizer:
    """A pyannote.audio speaker-diarization pipeline (4.x; 3.x still runs) applied in memory.

    From 4.x's ``DiarizeOutput`` it keeps the three views: ``speaker_diarization`` (turns,
    overlap kept), ``exclusive_speaker_diarization`` (community-1: the one speaker most
    likely at each moment, what words are given to) and ``speaker_embeddings`` (one row per
    speaker in ``labels()`` order, from the pipeline's own embedding model: the voices)."""

    def __init__(self, pipeline: Any, settings: Settings, embedder: str = "") -> None:
        self.pipeline = pipeline
        self.max_speakers_default = settings.max_speakers_default
        self.hears_far_field = True
        self.embedder = embedder or f"{settings.diarization_model}/embedding"

    def find_turns(
        self, audio: Audio, speakers: SpeakerRange, on_progress: ProgressCallback
    ) -> FoundSpeakers:
        import torch

        if len(audio.samples) == 0:
            return FoundSpeakers(())
        # (channel, time) float32 at 16 kHz: pyannote never decodes, so torchcodec is unused
        waveform = torch.from_numpy(np.ascontiguousarray(audio.samples, np.float32))[None]
        count: dict[str, int] = (
            {"num_speakers": speakers.minimum}
            if speakers.exact
            else {"min_speakers": speakers.minimum, "max_speakers": speakers.maximum}
        )
        output = self.pipeline(
            {"waveform": waveform, "sample_rate": audio.sample_rate},
            hook=PyannoteProgress(on_progress),
            **count,
        )
        # 4.x returns a DiarizeOutput; 3.x the Annotation itself.
        annotation = getattr(output, "speaker_diarization", output)
        exclusive = getattr(output, "exclusive_speaker_diarization", None)
        return FoundSpeakers(
            turns=_raw_turns(annotation),
            exclusive=None if exclusive is None else _raw_turns(exclusive),
            voices=speaker_voices(
                annotation, getattr(output, "speaker_embeddings", None), self.embedder
            ),
        )


def speaker_voices(
    annotation: Annotation, embeddings: Any, embedder: str
) -> tuple[SpeakerVoice, ...]:
    """One unit-length voice per speaker of ``annotation`` from ``embeddings`` (shape
    (n_speakers, dim), rows in ``annotation.labels()`` order); speakers whose row is missing,
    zero or not finite (too little clean speech to embed) get none."""
    if embeddings is None:
        return ()
    rows = np.asarray(embeddings, dtype=np.float64)
    voices = []
    for label, row in zip(annotation.labels(), rows, strict=False):
        norm = float(np.linalg.norm(row))
        if not np.isfinite(row).all() or norm == 0.0:
            continue
        voices.append(
            SpeakerVoice(
                speaker=str(label),
                embedding=tuple(float(x) for x in row / norm),
                embedder=embedder,
                seconds=round(float(annotation.label_duration(label)), 3),
            )
        )
    return tuple(voices)


class PyannoteProgress:
    """pyannote's ``hook(step_name, step_artifact, file=None, total=None, completed=None)``
    mapped onto ``on_progress``, only ever forward."""

    def __init__(self, on_progress: ProgressCallback) -> None:
        self.on_progress = on_progress
        self.reported = 0.0

    def __call__(
        self,
        step_name: str,
        step_artifact: Any,
        file: Any = None,
        total: int | None = None,
        completed: int | None = None,
    ) -> None:
        if step_name not in _PYANNOTE_STEPS:
            return
        lo, hi = _PYANNOTE_STEPS[step_name]
        done = completed / total if total and completed is not None else 1.0
        fraction = lo + (hi - lo) * min(1.0, done)
        if fraction > self.reported:
            self.reported = fraction
            self.on_progress(fraction)


def _load_pyannote_pipeline(settings: Settings, device: str) -> Any:
    """``Pipeline.from_pretrained(settings.diarization_model)`` (hub id or local clone),
    telemetry as ``settings.pyannote_telemetry`` says, moved to CUDA when that is
    the device."""
    try:
        import torch
        from pyannote.audio import Pipeline
        from pyannote.audio.telemetry import set_telemetry_metrics
    except ImportError as exc:
        raise DiarizationError(
            "DIARIZATION_BACKEND=pyannote needs pyannote.audio 4, which is not installed: "
            "install the project's `pyannote` extra (also in `gpu`; scripts/install.sh with "
            "LAHSTATS_INSTALL_PYANNOTE=1) or set DIARIZATION_BACKEND=bundled"
        ) from exc
    except OSError as exc:  # torchaudio's compiled extension, built for another torch
        raise DiarizationError(
            "pyannote.audio imports torchaudio, whose compiled extension does not load on "
            f"this torch ({exc}); run `python -m scripts.torchaudio_python_only` once "
            "(scripts/install.sh does) so that its pure-Python parts are used"
        ) from exc
    # pyannote 4 reports usage to pyannoteAI unless told not to; ours says no by default
    set_telemetry_metrics(settings.pyannote_telemetry)
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    # pyannote.audio 4.x takes `token`; 3.x took `use_auth_token`.
    keyword = (
        "token"
        if "token" in inspect.signature(Pipeline.from_pretrained).parameters
        else "use_auth_token"
    )
    try:
        pipeline = Pipeline.from_pretrained(settings.diarization_model, **{keyword: token})
    except Exception as exc:
        raise DiarizationError(
            f"could not load pyannote pipeline {settings.diarization_model!r} (a hub id, or "
            "a local clone of the model repository with its config.yaml)"
        ) from exc
    if pipeline is None:  # a gated model without a valid token
        raise DiarizationError(
            f"pyannote pipeline {settings.diarization_model!r} is gated: set HF_TOKEN "
            "to a token that accepted its conditions, or point DIARIZATION_MODEL at a local copy"
        )
    if device == "cuda":
        pipeline.to(torch.device("cuda"))
    return pipeline


def pyannote_embedder(settings: Settings) -> str:
    """The ``SpeakerVoice.embedder`` of a pyannote pipeline: its model and pyannote's
    version (voices from different ones must not be compared)."""
    from importlib.metadata import version

    return f"{settings.diarization_model}/embedding@pyannote.audio-{version('pyannote.audio')}"


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
