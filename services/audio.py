"""Audio in and out: decode uploads, join chunks, pick and encode a speaker's sample clip.

Everything here works on :class:`~services.domain.Audio` (16 kHz mono float32 in [-1, 1]);
times are seconds.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import soundfile
from pydub import AudioSegment
from pydub.exceptions import CouldntEncodeError

from services.domain import SAMPLE_RATE, Audio, SpeakerTurn

# ffmpeg codec behind each clip format we encode; Opus is made for speech and small.
CLIP_CODECS = {"ogg": "libopus", "webm": "libopus", "mp3": "libmp3lame", "wav": "pcm_s16le"}
CLIP_BITRATE = "32k"


class AudioError(Exception):
    """Base of the errors this module raises."""


class AudioDecodeError(AudioError):
    """The bytes are not audio that ffmpeg can read, or hold no samples."""


class AudioEncodeError(AudioError):
    """ffmpeg could not encode the clip."""


def decode_audio(source: bytes | BinaryIO | Path, format_hint: str | None = None) -> Audio:
    """Decode anything FFmpeg reads (wav, m4a/aac, mp3, ogg/opus, webm...) to 16 kHz mono
    float32, in process with PyAV (FFmpeg's libraries, which faster-whisper already brings):
    no ffmpeg process per chunk, FFmpeg's own resampler. A live session's finish decodes
    the chunks its clips need; this is ~2.5x faster than the ffmpeg command line via pydub.

    ``format_hint`` is an FFmpeg demuxer name or file extension ("webm", "m4a"); without it
    FFmpeg probes the content. Raises :class:`AudioDecodeError` on undecodable or empty input.
    """
    import av

    reader: BinaryIO | str = (
        io.BytesIO(source)
        if isinstance(source, bytes)
        else str(source)
        if isinstance(source, Path)
        else source
    )
    parts: list[npt.NDArray[np.float32]] = []
    try:
        with av.open(
            reader, mode="r", format=_DEMUXERS.get(format_hint or "", format_hint),
            metadata_errors="ignore",
        ) as container:  # fmt: skip
            if not container.streams.audio:
                raise AudioDecodeError("the file holds no audio stream")
            # the decoded frames joined first (one resampler call, not one per 20 ms frame);
            # planar, channels kept, then averaged: FFmpeg's own downmix to mono weighs a
            # stereo pair by 1/sqrt(2) each, a 3 dB louder mono than the channels' mean
            fifo = av.AudioFifo()
            for frame in container.decode(audio=0):
                frame.pts = None
                fifo.write(frame)
            joined = fifo.read()
            if joined is not None:
                resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
                parts.extend(_mono(f) for f in resampler.resample(joined))
                parts.extend(_mono(f) for f in resampler.resample(None))
    except (av.error.FFmpegError, ValueError, OSError, IndexError) as error:
        raise AudioDecodeError(
            f"could not decode audio ({format_hint or 'unknown format'})"
        ) from error
    samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if samples.size == 0:
        raise AudioDecodeError("the audio holds no samples")
    return Audio(np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False), SAMPLE_RATE)


def _mono(frame: Any) -> npt.NDArray[np.float32]:
    """A planar float frame (channels, samples) as the mean of its channels."""
    planes = np.asarray(frame.to_ndarray(), dtype=np.float32)
    return planes.mean(axis=0, dtype=np.float32) if planes.ndim == 2 else planes


# file extensions that are not FFmpeg demuxer names
_DEMUXERS = {"m4a": "mp4", "aac": "aac", "webm": "webm", "opus": "ogg", "oga": "ogg"}


class AudioSpool:
    """Decoded chunks appended to a file on disk and read back as one memory-mapped array, so
    a long session never sits in memory as raw PCM twice (16 kHz float32 is 230 MB an hour;
    the pages of the map are the OS's to evict). Use as a context manager; the file goes
    with it."""

    def __init__(self, directory: Path, sample_rate: int = SAMPLE_RATE) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._file = tempfile.NamedTemporaryFile(dir=directory, suffix=".f32", delete=False)  # noqa: SIM115
        self._path = Path(self._file.name)
        self._rate = sample_rate
        self._samples = 0

    def __enter__(self) -> AudioSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()
        self._path.unlink(missing_ok=True)  # an open map keeps its pages until dropped

    def append(self, audio: Audio) -> None:
        if audio.sample_rate != self._rate:
            raise ValueError(f"spool holds {self._rate} Hz audio, got {audio.sample_rate} Hz")
        self._file.write(np.ascontiguousarray(audio.samples, dtype=np.float32).tobytes())
        self._samples += len(audio.samples)

    def audio(self) -> Audio:
        """Everything appended so far, as one read-only array mapped from the file."""
        self._file.flush()
        if self._samples == 0:
            return Audio(np.zeros(0, dtype=np.float32), self._rate)
        mapped = np.memmap(self._path, dtype=np.float32, mode="r", shape=(self._samples,))
        return Audio(mapped, self._rate)


def find_gaps(chunk_numbers: Iterable[int]) -> list[int]:
    """The chunk numbers missing from 0 to the highest one received, ascending."""
    present = set(chunk_numbers)
    if any(number < 0 for number in present):
        raise ValueError("chunk numbers start at 0")
    if not present:
        return []
    return [number for number in range(max(present)) if number not in present]


def sample_clip_window(
    turns: Sequence[SpeakerTurn], speaker: str, length: float
) -> tuple[float, float] | None:
    """The (start, end) seconds of a clip of at most ``length`` seconds for ``speaker``.

    Picks the speaker's longest clean stretch (their speech while nobody else speaks; touching
    turns of theirs count as one) and centres the clip in it. When every turn of theirs is
    overlapped, falls back to their longest turn. ``None`` when the speaker has no turns.
    """
    own = _merge([(t.start, t.end) for t in turns if t.speaker == speaker])
    if not own:
        return None
    others = _merge([(t.start, t.end) for t in turns if t.speaker != speaker])
    clean = [piece for stretch in own for piece in subtract(stretch, others)]
    start, end = max(clean or own, key=lambda stretch: stretch[1] - stretch[0])
    if end - start <= length:
        return start, end
    middle = (start + end) / 2
    return middle - length / 2, middle + length / 2


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted union of (start, end) intervals; touching ones are joined."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif end > start:
            merged.append((start, end))
    return merged


def subtract(
    stretch: tuple[float, float], holes: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The parts of ``stretch`` outside ``holes`` (sorted by start; they may overlap)."""
    pieces = []
    cursor, end = stretch
    for hole_start, hole_end in holes:
        if hole_end <= cursor or hole_start >= end:
            continue
        if hole_start > cursor:
            pieces.append((cursor, hole_start))
        cursor = max(cursor, hole_end)
    if cursor < end:
        pieces.append((cursor, end))
    return pieces


def encode_clip(audio: Audio, fmt: str = "ogg") -> bytes:
    """Encode ``audio`` for playback in a browser.

    ``ogg`` (the default) is Ogg/Opus at the audio's own rate (Opus accepts 16 kHz), encoded
    in-process by libsndfile (no ffmpeg start-up: a session stores a clip per counted word);
    ``webm`` holds Opus at 32 kbit/s; ``mp3`` is LAME MP3 at 32 kbit/s; ``wav`` is 16-bit PCM.
    """
    codec = CLIP_CODECS.get(fmt)
    if codec is None:
        raise ValueError(f"unknown clip format {fmt!r}; expected one of {sorted(CLIP_CODECS)}")
    if fmt == "ogg" and len(audio.samples):
        encoded = io.BytesIO()
        samples = np.clip(audio.samples, -1.0, 1.0)
        try:
            soundfile.write(encoded, samples, audio.sample_rate, format="OGG", subtype="OPUS")
        except (soundfile.LibsndfileError, ValueError) as error:
            raise AudioEncodeError(f"could not encode an ogg clip: {error}") from error
        return encoded.getvalue()
    pcm = (np.clip(audio.samples, -1.0, 1.0) * 32767).astype("<i2")
    segment = AudioSegment(pcm.tobytes(), sample_width=2, frame_rate=audio.sample_rate, channels=1)
    encoded = io.BytesIO()
    bitrate = None if fmt == "wav" else CLIP_BITRATE
    try:
        segment.export(encoded, format=fmt, codec=codec, bitrate=bitrate)
    except CouldntEncodeError as error:
        raise AudioEncodeError(f"could not encode a {fmt} clip with {codec}") from error
    return encoded.getvalue()
