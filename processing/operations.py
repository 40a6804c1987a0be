"""What an operator does to sessions from the CLI: look, requeue, reprocess, recount.

Each function is one transaction (the CLI command is the edge) and enqueues after commit.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import redis
import structlog
from rq import Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

import lifecycle
from config import Settings
from models import AudioChunk, Segment, Session, SessionStatus, WordOccurrence
from processing.chunks import ChunkError, concatenate_chunks
from processing.clips import delete_clips, store_evidence_clips
from processing.evidence import (
    group_feedback_of,
    occurrence_rows,
    stored_utterance,
    stored_verdicts,
)
from processing.rows import ChunkRef
from queueing.jobs import chunk_queue, processing_queue, requeue_processing
from services import singlish
from services.audio import AudioSpool
from services.singlish.confidence import Rating, counts
from services.singlish.dictionary import Corrections
from services.singlish.occurrences import Occurrence
from storage import Storage, StorageError, evidence_clip_key

log = structlog.get_logger(__name__)


class OperationError(Exception):
    """The operation does not apply to that session; the message says why."""


@dataclass(frozen=True)
class SystemStatus:
    queued: int
    started: int
    failed_jobs: int
    workers: list[dict[str, str]]
    sessions: dict[str, int]
    stuck: list[uuid.UUID]
    chunks_queued: int = 0  # live sessions' chunk jobs waiting
    chunks_started: int = 0


def system_status(
    session_factory: sessionmaker[DbSession], connection: redis.Redis, settings: Settings
) -> SystemStatus:
    queue = processing_queue(connection, settings)
    chunks = chunk_queue(connection, settings)
    workers = []
    for worker in Worker.all(queue=queue):
        info = connection.get(f"lahstats:worker:{worker.name}")
        details = json.loads(info) if info else {}
        workers.append({"name": worker.name, "state": str(worker.get_state()), **details})
    with session_factory() as db:
        counts = db.execute(select(Session.status, func.count()).group_by(Session.status)).all()
        stuck = db.scalars(
            select(Session.id).where(
                Session.status == SessionStatus.PROCESSING,
                Session.lease_expires_at < datetime.now(UTC),
            )
        ).all()
    return SystemStatus(
        queued=queue.count,
        started=StartedJobRegistry(queue=queue).count,
        failed_jobs=FailedJobRegistry(queue=queue).count,
        workers=workers,
        sessions={status.value: count for status, count in counts},
        stuck=list(stuck),
        chunks_queued=chunks.count,
        chunks_started=StartedJobRegistry(queue=chunks).count,
    )


def requeue_failed(
    session_factory: sessionmaker[DbSession],
    connection: redis.Redis,
    settings: Settings,
    since: datetime | None = None,
) -> list[uuid.UUID]:
    """Give every failed session (ended since ``since``) a fresh set of attempts."""
    with session_factory() as db:
        query = select(Session).where(Session.status == SessionStatus.FAILED)
        if since is not None:
            query = query.where(Session.ended_at >= since)
        sessions = db.scalars(query.with_for_update()).all()
        for session in sessions:
            lifecycle.reset(session)
        requeued = [(s.id, s.duration_s) for s in sessions]
        db.commit()
    for session_id, duration in requeued:
        requeue_processing(connection, settings, session_id, duration or 0.0)
    return [session_id for session_id, _ in requeued]


def reprocess(
    session_factory: sessionmaker[DbSession],
    connection: redis.Redis,
    settings: Settings,
    session_id: uuid.UUID,
    num_speakers: int | None,
) -> None:
    """Run a processed (or failed) session again, e.g. with a fixed speaker count — the usual
    fix for bad diarization. A live session's chunks are not heard again: the stored window
    embeddings are clustered anew and the transcript's words kept. Claims on speakers still in
    the same place are kept, the others released with a warning (``processing.claims``)."""
    with session_factory() as db:
        session = db.get(Session, session_id, with_for_update=True)
        if session is None:
            raise OperationError(f"no session {session_id}")
        if session.status in (SessionStatus.RECORDING, SessionStatus.PROCESSING):
            raise OperationError(f"session is {session.status.value}; nothing to reprocess")
        if not db.scalar(select(func.count()).where(AudioChunk.session_id == session_id)):
            raise OperationError("its raw audio was deleted (AUDIO_RETENTION_DAYS); nothing to run")
        if num_speakers is not None:
            session.num_speakers, session.min_speakers, session.max_speakers = (
                num_speakers,
                None,
                None,
            )
        lifecycle.reset(session)
        duration = session.duration_s or 0.0
        db.commit()
    requeue_processing(connection, settings, session_id, duration)


def recount(
    session_factory: sessionmaker[DbSession],
    storage: Storage,
    settings: Settings,
    corrections: Corrections,
    session_ids: list[uuid.UUID] | None = None,
    rating: Rating | None = None,
) -> dict[uuid.UUID, int]:
    """Re-derive every processed session's occurrences (so every count, claimed users'
    included) from its stored evidence — the recognised words and the verifier's verdicts —
    with ``corrections``, rated by ``rating`` (the calibration and ``COUNT_MIN_CONFIDENCE``;
    each session's group feedback is added) without re-running ASR. An occurrence found again
    (same speaker, word and time) keeps its row, so its human decision and review history
    stay; a new one gets its clip cut from the session's chunks; a clip no occurrence uses any
    more is deleted. ``None`` = every processed session. Returns each session's new count of
    counted target words."""
    rating = rating if rating is not None else Rating()
    with session_factory() as db:
        query = select(Session.id).where(
            Session.status.in_([SessionStatus.READY_FOR_CLAIMING, SessionStatus.COMPLETED])
        )
        if session_ids is not None:
            query = query.where(Session.id.in_(session_ids))
        chosen = list(db.scalars(query))
    return {
        sid: _recount_session(session_factory, storage, settings, corrections, rating, sid)
        for sid in chosen
    }


def _recount_session(
    session_factory: sessionmaker[DbSession],
    storage: Storage,
    settings: Settings,
    corrections: Corrections,
    rating: Rating,
    session_id: uuid.UUID,
) -> int:
    """One session in one transaction, its row locked so no claim, reprocess or dispute
    interleaves."""
    with session_factory() as db:
        session = db.get(Session, session_id, with_for_update=True)
        if session is None or session.status not in (
            SessionStatus.READY_FOR_CLAIMING,
            SessionStatus.COMPLETED,
        ):
            return 0
        rating = replace(rating, feedback=group_feedback_of(db, session.group_id))
        found = _reread(db, session, corrections)
        old = list(
            db.scalars(select(WordOccurrence).where(WordOccurrence.session_id == session_id))
        )
        old_keys = {o.clip_key for o in old if o.clip_key}
        clips = _evidence_clips(
            session,
            [(o.start, o.end) for _, occ in found for o in occ],
            old_keys,
            storage,
            settings,
        )
        speaker_ids = {s.label: s.id for s in session.speakers}
        fresh = [
            row
            for segment, occurrences in found
            for row in occurrence_rows(
                occurrences, session_id, speaker_ids, segment.id, clips, rating
            )
        ]
        kept = _keep_judged_rows(db, old, fresh, rating)
        session.corrections_version = corrections.version
        db.commit()
    delete_clips(storage, old_keys - set(clips.values()))  # after the commit
    return sum(1 for row in kept if row.counted)


def _reread(
    db: DbSession, session: Session, corrections: Corrections
) -> list[tuple[Segment, tuple[Occurrence, ...]]]:
    """Every segment read again from its stored words and verdicts (its corrected text too)."""
    labels = {s.id: s.label for s in session.speakers}
    segments = db.scalars(
        select(Segment).where(Segment.session_id == session.id).order_by(Segment.start_s)
    ).all()
    found = []
    for segment in segments:
        utterance = stored_utterance(segment, labels[segment.speaker_id])
        reading = singlish.read(utterance, corrections, stored_verdicts(segment))
        segment.corrected_text = reading.corrected_text
        found.append((segment, reading.occurrences))
    return found


_Identity = tuple[uuid.UUID, str, float | None, float | None]


def _identity(row: WordOccurrence) -> _Identity:
    def at(t: float | None) -> float | None:
        return None if t is None else round(t, 3)

    return (row.speaker_id, row.word, at(row.start_s), at(row.end_s))


def _keep_judged_rows(
    db: DbSession, old: list[WordOccurrence], fresh: list[WordOccurrence], rating: Rating
) -> list[WordOccurrence]:
    """Replace ``old`` rows by ``fresh`` ones, updating in place the old row of an
    occurrence found again (its id, decision and review history stay, and a decision still
    wins over the threshold); old rows not found again are deleted. Returns the rows now."""
    waiting: dict[_Identity, list[WordOccurrence]] = {}
    for row in old:
        waiting.setdefault(_identity(row), []).append(row)
    result = []
    for row in fresh:
        same = waiting.get(_identity(row))
        if not same:
            db.add(row)
            result.append(row)
            continue
        kept = same.pop(0)
        for column in _RECOMPUTED:
            setattr(kept, column, getattr(row, column))
        kept.counted = counts(kept.confidence, kept.decision, rating.min_confidence)
        result.append(kept)
    for rows in waiting.values():
        for row in rows:
            db.delete(row)
    return result


# what a recount re-derives; the identity (speaker, word, times) and the decision stay
_RECOMPUTED = (
    "segment_id",
    "heard",
    "source",
    "rule",
    "dictionary_version",
    "score",
    "clip_key",
    "confidence",
    "confidence_version",
)


def _evidence_clips(
    session: Session,
    spans: list[tuple[float, float]],
    existing: set[str],
    storage: Storage,
    settings: Settings,
) -> dict[tuple[float, float], str]:
    """A clip key for every span: the one already stored, else one cut from the session's
    chunks (decoded only when some span needs it; a span beyond the audio gets none)."""
    keys = {span: evidence_clip_key(session.id, *span) for span in spans}
    missing = sorted({span for span, key in keys.items() if key not in existing})
    if not missing:
        return keys
    chunks = [ChunkRef(c.chunk_number, c.storage_key, c.content_type) for c in session.chunks]
    made: dict[tuple[float, float], str] = {}
    try:
        with AudioSpool(settings.data_dir / "work") as spool:
            concatenate_chunks(
                sorted(chunks, key=lambda c: c.number), storage, spool, skip_bad_chunks=True
            )
            audio = spool.audio()
            cut = [span for span in missing if span[0] < audio.duration]
            made = store_evidence_clips(audio, cut, session.id, storage)
    except (StorageError, ChunkError) as exc:  # the counts stand without clips; say why
        log.warning("recount.no_clips", session_id=str(session.id), error=str(exc))
    return {span: key for span, key in keys.items() if key in existing or span in made}
