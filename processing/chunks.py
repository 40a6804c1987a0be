"""A session's chunks, from storage into the on-disk spool the stages read, one at a time."""

from __future__ import annotations

from collections.abc import Sequence

from processing.retrying import storage_retry
from processing.rows import ChunkRef
from services.audio import AudioDecodeError, AudioSpool, decode_audio, find_gaps
from services.domain import Audio, ProgressCallback, no_progress
from storage import Storage, opened


class ProcessingError(Exception):
    """A stage failed; the message names the stage (and the chunk, for audio)."""


def concatenate_chunks(
    chunks: Sequence[ChunkRef],
    storage: Storage,
    spool: AudioSpool,
    *,
    skip_bad_chunks: bool,
    on_progress: ProgressCallback = no_progress,
) -> list[str]:
    """Decode every chunk in ``chunk_number`` order into the spool (16 kHz mono float32), one
    at a time; returns the warnings (missing or skipped chunks)."""
    warnings = [f"chunk {n} is missing" for n in find_gaps(c.number for c in chunks)]
    for i, chunk in enumerate(chunks):
        try:
            spool.append(_decode_chunk(storage, chunk))
        except AudioDecodeError as exc:
            if not skip_bad_chunks:
                raise ProcessingError(f"chunk {chunk.number} could not be decoded: {exc}") from exc
            warnings.append(f"chunk {chunk.number} skipped: could not be decoded")
        on_progress((i + 1) / len(chunks))
    return warnings


@storage_retry
def _decode_chunk(storage: Storage, chunk: ChunkRef) -> Audio:
    # No format hint: the declared content type is the phone's word, ffmpeg probes the bytes.
    with opened(storage, chunk.storage_key) as stream:
        return decode_audio(stream)
