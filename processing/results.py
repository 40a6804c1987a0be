"""A session's results as one JSON document: the shape of API_CONTRACT.md's "main job without
a server" (what ``lahstats process --json`` writes). Built from the stored rows
(:func:`stored_result`) or from what the stages made of the audio before anything is saved
(:func:`heard_result`); the benchmarks and the research harness use the same pieces.

Times are seconds from the start of the session's audio.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from models import Segment, Session, WordOccurrence
from processing.clips import Clips
from processing.rows import Heard
from services.singlish.confidence import Evidence as HeardEvidence
from storage import LocalStorage, Storage


def stored_result(db: DbSession, storage: Storage, session_id: uuid.UUID) -> dict[str, Any]:
    """The processed session ``session_id`` as stored: its speakers, segments and the
    occurrences behind every count, clips as file paths when storage is the local disk."""
    session = db.get(Session, session_id)
    if session is None:
        raise LookupError(f"no session {session_id}")
    speakers = {s.id: s for s in session.speakers}
    occurrences, counts = _stored_occurrences(db, session_id)
    segments = db.scalars(
        select(Segment).where(Segment.session_id == session_id).order_by(Segment.start_s)
    )
    return {
        "duration_s": round(session.duration_s or 0.0, 3),
        "warnings": list(session.warnings or []),
        "speakers": [
            speaker_json(
                s.label,
                dict(sorted(counts[s.id].items())),
                talk_time_s=s.total_duration_s,
                segment_count=s.segment_count,
                dominant_emotion=s.dominant_emotion,
                sample_clip=local_path(s.sample_clip_key, storage),
            )
            for s in speakers.values()
        ],
        "segments": [
            segment_json(
                g.start_s,
                g.end_s,
                speakers[g.speaker_id].label,
                g.text,
                g.corrected_text,
                g.emotion,
                g.emotion_score,
            )
            for g in segments
        ],
        "occurrences": [
            occurrence_json(
                o,
                speakers[o.speaker_id].label,
                o.start_s,
                o.end_s,
                local_path(o.clip_key, storage),
                counted=o.counted,
            )
            for o in occurrences
        ],
    }


def _stored_occurrences(
    db: DbSession, session_id: uuid.UUID
) -> tuple[list[WordOccurrence], dict[uuid.UUID, Counter[str]]]:
    """The session's occurrences in time order (counted or not), and every speaker's counts
    made of the counted ones (as the API's GROUP BY does)."""
    occurrences = list(
        db.scalars(
            select(WordOccurrence)
            .where(WordOccurrence.session_id == session_id)
            .order_by(WordOccurrence.start_s)
        )
    )
    counts: dict[uuid.UUID, Counter[str]] = defaultdict(Counter)
    for o in occurrences:
        if o.counted:
            counts[o.speaker_id][o.word] += 1
    return occurrences, counts


def heard_result(
    heard: Heard,
    clips: Clips,
    duration_s: float,
    storage: Storage,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """The same document from :func:`processor.process_audio`'s output and its stored clips
    (:func:`processing.clips.store_clips`), no rows written."""
    analysis = heard.analysis
    return {
        "duration_s": round(duration_s, 3),
        "warnings": list(warnings or []),
        "speakers": [
            speaker_json(
                s.label,
                s.word_counts,
                talk_time_s=s.talk_time_s,
                segment_count=s.segment_count,
                dominant_emotion=s.dominant_emotion,
                sample_clip=local_path(clips.samples.get(s.label), storage),
            )
            for s in analysis.speakers
        ],
        "segments": [
            segment_json(
                g.start,
                g.end,
                g.speaker,
                g.text,
                g.corrected_text,
                g.emotion.label,
                g.emotion.score,
            )
            for g in analysis.segments
        ],
        "occurrences": [
            occurrence_json(
                o,
                o.speaker,
                o.start,
                o.end,
                local_path(clips.evidence.get((o.start, o.end)), storage),
                counted=analysis.counted(o),
            )
            for o in analysis.occurrences
        ],
    }


def speaker_json(
    label: str,
    word_counts: Mapping[str, int],
    *,
    talk_time_s: float | None = None,
    segment_count: int | None = None,
    dominant_emotion: str | None = None,
    sample_clip: str | None = None,
) -> dict[str, Any]:
    """One entry of ``speakers``; what the caller does not know stays null."""
    return {
        "label": label,
        "talk_time_s": None if talk_time_s is None else round(talk_time_s, 2),
        "segment_count": segment_count,
        "word_counts": dict(word_counts),
        "dominant_emotion": dominant_emotion,
        "sample_clip": sample_clip,
    }


def segment_json(
    start: float,
    end: float,
    speaker: str,
    text: str,
    corrected_text: str,
    emotion: str | None = None,
    emotion_score: float | None = None,
) -> dict[str, Any]:
    """One entry of ``segments``."""
    return {
        "start": round(start, 3),
        "end": round(end, 3),
        "speaker": speaker,
        "text": text,
        "corrected_text": corrected_text,
        "emotion": emotion,
        "emotion_score": round(emotion_score or 0.0, 4),
    }


class Evidence(HeardEvidence, Protocol):
    """What an occurrence row and a :class:`services.singlish.occurrences.Occurrence` both
    say about a word heard: how it was heard (:class:`services.singlish.confidence.Evidence`),
    the dictionary it was read with, and how sure we are of it."""

    @property
    def dictionary_version(self) -> str: ...
    @property
    def confidence(self) -> float | None: ...


def occurrence_json(
    evidence: Evidence,
    speaker: str,
    start: float | None,
    end: float | None,
    clip: str | None = None,
    *,
    counted: bool = True,
) -> dict[str, Any]:
    """One entry of ``occurrences``: a target word heard, the evidence it came from, how sure
    we are of it (``confidence``, 0-1) and whether it is in the counts (``counted``; a
    "possible" one below ``COUNT_MIN_CONFIDENCE`` or disputed is not)."""
    return {
        "speaker": speaker,
        "word": evidence.word,
        "start": start,
        "end": end,
        "heard": evidence.heard,
        "source": evidence.source,
        "rule": evidence.rule,
        "dictionary_version": evidence.dictionary_version,
        "score": evidence.score,
        "confidence": evidence.confidence,
        "counted": counted,
        "clip": clip,
    }


def local_path(key: str | None, storage: Storage) -> str | None:
    """A stored object's file path when storage is the local disk, else its key."""
    if key and isinstance(storage, LocalStorage):
        return str(storage.root / key)
    return key
