"""A session's chunks, from storage into the on-disk spool the stages read, one at a time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from processing.retrying import storage_retry
from processing.rows import ChunkRef
from services.audio import AudioDecodeError, AudioSpool, decode_audio, find_gaps
from services.domain import SAMPLE_RATE, Audio, ProgressCallback, no_progress
from storage import Storage, opened


class ChunkError(Exception):
    """The session's chunks do not make a recording; the message names the chunk."""


def concatenate_chunks(
    chunks: Sequence[ChunkRef],
    storage: Storage,
    spool: AudioSpool,
    *,
    skip_bad_chunks: bool,
    on_progress: ProgressCallback = no_progress,
) -> list[str]:
    """Decode every chunk in ``chunk_number`` order into the spool (16 kHz mono float32), one
    at a time; returns the warnings (missing or skipped chunks). Raises :class:`ChunkError`
    for a chunk that cannot be decoded (unless skipped), or when none could be."""
    warnings = [f"chunk {n} is missing" for n in find_gaps(c.number for c in chunks)]
    for i, chunk in enumerate(chunks):
        try:
            spool.append(_decode_chunk(storage, chunk))
        except AudioDecodeError as exc:
            if not skip_bad_chunks:
                raise ChunkError(f"chunk {chunk.number} could not be decoded: {exc}") from exc
            warnings.append(f"chunk {chunk.number} skipped: could not be decoded")
        on_progress((i + 1) / len(chunks))
    if spool.audio().duration == 0:
        raise ChunkError("no chunk of this session could be decoded")
    return warnings


@storage_retry
def _decode_chunk(storage: Storage, chunk: ChunkRef) -> Audio:
    # No format hint: the declared content type is the phone's word, ffmpeg probes the bytes.
    with opened(storage, chunk.storage_key) as stream:
        return decode_audio(stream)


class ChunkAudio:
    """Chunks decoded on demand, the last few kept: a chunk job decodes its chunk and the one
    before it (whose tail it carries), and the next job needs the same chunk again."""

    def __init__(self, storage: Storage, keep: int = 3) -> None:
        self.storage = storage
        self.keep = keep
        self._decoded: OrderedDict[str, Audio] = OrderedDict()
        self._lock = threading.Lock()  # kept cheap insurance: clips are made one at a time now

    def get(self, storage_key: str) -> Audio:
        """The chunk's 16 kHz audio; raises :class:`AudioDecodeError` when it has none."""
        with self._lock:
            if storage_key in self._decoded:
                self._decoded.move_to_end(storage_key)
                return self._decoded[storage_key]
            audio = _decode_key(self.storage, storage_key)
            self._decoded[storage_key] = audio
            while len(self._decoded) > self.keep:
                self._decoded.popitem(last=False)
            return audio


class ChunkedRecording:
    """A session's recording as its chunks in storage: each slice decodes only the chunks it
    covers (through a :class:`ChunkAudio`), so nothing grows with the session's length.
    ``chunks``: (storage key, decoded length in samples) in order; an undecodable chunk
    that was skipped has length 0."""

    def __init__(self, chunks: Sequence[tuple[str, int]], audio: ChunkAudio) -> None:
        self.chunks = [(key, n) for key, n in chunks if n > 0]
        self.starts = np.cumsum([0, *(n for _, n in self.chunks)])
        self.audio = audio

    @property
    def duration(self) -> float:
        return float(self.starts[-1]) / SAMPLE_RATE

    def slice(self, start: float, end: float) -> Audio:
        lo = max(0, round(start * SAMPLE_RATE))
        hi = min(int(self.starts[-1]), round(end * SAMPLE_RATE))
        parts = []
        for (key, _), first, last in zip(
            self.chunks, self.starts[:-1], self.starts[1:], strict=True
        ):
            if last <= lo or first >= hi:
                continue
            samples = self.audio.get(key).samples
            parts.append(samples[max(0, lo - first) : min(len(samples), hi - first)])
        if not parts:
            return Audio(np.zeros(0, np.float32))
        return Audio(np.concatenate(parts).astype(np.float32, copy=False))


@storage_retry
def _decode_key(storage: Storage, storage_key: str) -> Audio:
    with opened(storage, storage_key) as stream:
        return decode_audio(stream)
