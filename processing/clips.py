"""Clips written to storage: a sample per speaker, from their longest clean stretch, and one
per counted word (its evidence), so a user can hear why "walao" was counted."""

from __future__ import annotations

import io
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from config import Settings
from services.audio import encode_clip, sample_clip_window
from services.domain import ProgressCallback, Recording, SpeakerTurn, no_progress
from storage import Storage, StorageError, clip_key, evidence_clip_key

if TYPE_CHECKING:  # rows imports Clips from here
    from processing.rows import Heard

log = structlog.get_logger(__name__)

EVIDENCE_PAD_S = 0.6  # audio either side of the counted word: enough to hear it in context


@dataclass(frozen=True)
class Clips:
    """The clips of one session's results, in storage: speaker label → sample clip, and a
    counted word's (start, end) → its evidence clip."""

    samples: Mapping[str, str]
    evidence: Mapping[tuple[float, float], str]


def store_clips(
    audio: Recording,
    heard: Heard,
    session_id: uuid.UUID,
    storage: Storage,
    settings: Settings,
    on_progress: ProgressCallback = no_progress,
    stored: Collection[str] = (),
) -> Clips:
    """Encode (Ogg/Opus) and store a sample clip per speaker and an evidence clip per
    counted word of what the stages heard; an evidence clip among ``stored`` (the session's
    clips from its last processing: the same word at the same time) is kept as it is."""
    samples = store_sample_clips(
        audio, heard.turns, session_id, storage, settings.sample_clip_seconds
    )
    on_progress(0.5)
    spans = [(o.start, o.end) for o in heard.analysis.occurrences]
    evidence = store_evidence_clips(audio, spans, session_id, storage, stored)
    on_progress(1.0)
    return Clips(samples, evidence)


def store_sample_clips(
    audio: Recording,
    turns: Sequence[SpeakerTurn],
    session_id: uuid.UUID,
    storage: Storage,
    seconds: float,
) -> dict[str, str]:
    """Speaker label → storage key of their clip (Ogg/Opus), for every speaker in ``turns``."""
    keys: dict[str, str] = {}
    for speaker in sorted({t.speaker for t in turns}):
        window = sample_clip_window(turns, speaker, seconds)
        if window is None:
            continue
        key = clip_key(session_id, speaker)
        data = encode_clip(audio.slice(*window))
        storage.put(key, io.BytesIO(data), "audio/ogg")
        keys[speaker] = key
    return keys


def store_evidence_clips(
    audio: Recording,
    spans: Iterable[tuple[float, float]],
    session_id: uuid.UUID,
    storage: Storage,
    stored: Collection[str] = (),
) -> dict[tuple[float, float], str]:
    """(start, end) of each counted word → storage key of its clip (the span padded by
    :data:`EVIDENCE_PAD_S`, Ogg/Opus). One clip per distinct span; one already ``stored``
    under its key is not made again.

    One clip at a time, in time order (so each chunk is decoded once): encoding is
    in-process (libsndfile), so threads saved little, and each thread's decodes grew its own
    malloc arena, which glibc keeps: with four, a 60-minute session's clips raised the
    worker's peak by ~200 MB, with one by ~80 MB (5 minutes: ~2 MB either way)."""
    keys = {}
    for start, end in sorted(set(spans)):
        key = evidence_clip_key(session_id, start, end)
        if key not in stored:
            data = encode_clip(audio.slice(start - EVIDENCE_PAD_S, end + EVIDENCE_PAD_S))
            storage.put(key, io.BytesIO(data), "audio/ogg")
        keys[(start, end)] = key
    return keys


def delete_clips(storage: Storage, keys: Iterable[str]) -> None:
    """Delete clips nothing points at any more, best effort and after the commit that let go
    of them: a clip left behind costs kilobytes, a failure here must not fail the caller."""
    for key in keys:
        try:
            storage.delete(key)
        except StorageError as exc:
            log.warning("clips.not_deleted", key=key, error=str(exc))
