"""A session's chunks, from storage into the on-disk spool the stages read, one at a time."""

from __future__ import annotations

from collections.abc import Sequence

from processing.retrying import storage_retry
from processing.rows import ChunkRef
from services.audio import AudioDecodeError, AudioSpool, decode_audio, find_gaps
from services.domain import Audio, ProgressCallback, no_progress
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
