"""What an operator does to sessions from the CLI: look, requeue, reprocess, recount.

Each function is one transaction (the CLI command is the edge) and enqueues after commit.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from rq import Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from config import Settings
from jobs import processing_queue, requeue_processing
from models import (
    ClaimType,
    Segment,
    Session,
    SessionSpeaker,
    SessionStatus,
    SpeakerWordCount,
    WordCount,
)
from services.corrections import Corrections
from services.domain import Utterance, Word
from services.occurrences import corrected_text, count_occurrences, detect_occurrences


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


def system_status(
    session_factory: sessionmaker[DbSession], connection: redis.Redis, settings: Settings
) -> SystemStatus:
    queue = processing_queue(connection, settings)
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
            _reset_for_processing(session)
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
    fix for bad diarization. Refused once someone has claimed a speaker: the new speakers
    would not be the ones they claimed."""
    with session_factory() as db:
        session = db.get(Session, session_id, with_for_update=True)
        if session is None:
            raise OperationError(f"no session {session_id}")
        if session.status in (SessionStatus.RECORDING, SessionStatus.PROCESSING):
            raise OperationError(f"session is {session.status.value}; nothing to reprocess")
        claimed = db.scalar(
            select(func.count()).where(
                SessionSpeaker.session_id == session_id, SessionSpeaker.claimed_by.is_not(None)
            )
        )
        if claimed:
            raise OperationError("speakers of this session are claimed; unclaim them first")
        if num_speakers is not None:
            session.num_speakers, session.min_speakers, session.max_speakers = (
                num_speakers,
                None,
                None,
            )
        _reset_for_processing(session)
        duration = session.duration_s or 0.0
        db.commit()
    requeue_processing(connection, settings, session_id, duration)


def _reset_for_processing(session: Session) -> None:
    session.status = SessionStatus.PROCESSING
    session.attempts = 0
    session.error_message = None
    session.lease_expires_at = None
    session.stage = "queued"


def recount(
    session_factory: sessionmaker[DbSession],
    corrections: Corrections,
    session_ids: list[uuid.UUID] | None = None,
) -> dict[uuid.UUID, int]:
    """Re-apply the corrections dictionary to stored transcripts and re-derive every count
    (claimed users' counts included) without re-running ASR. ``None`` = every processed
    session. Returns each session's new total of target words."""
    totals: dict[uuid.UUID, int] = {}
    with session_factory() as db:
        query = select(Session).where(
            Session.status.in_([SessionStatus.READY_FOR_CLAIMING, SessionStatus.COMPLETED])
        )
        if session_ids is not None:
            query = query.where(Session.id.in_(session_ids))
        for session in db.scalars(query.with_for_update()).all():
            totals[session.id] = _recount_session(db, session, corrections)
        db.commit()
    return totals


def _recount_session(db: DbSession, session: Session, corrections: Corrections) -> int:
    """Rebuild the session's utterances from stored segments and run the same detection the
    pipeline runs. Stored text has no word times, so each segment is one span; verify rules,
    which need the audio, keep what the last processing found only after a reprocess."""
    labels = {s.id: s.label for s in session.speakers}
    segments = db.scalars(select(Segment).where(Segment.session_id == session.id)).all()
    utterances = {
        segment.id: Utterance(
            speaker=labels[segment.speaker_id],
            start=segment.start_s,
            end=segment.end_s,
            words=(Word(segment.start_s, segment.end_s, f" {segment.text}"),),
        )
        for segment in segments
    }
    for segment in segments:
        segment.corrected_text = corrected_text(utterances[segment.id], corrections)
    counts = count_occurrences(detect_occurrences(utterances.values(), corrections))
    for speaker in session.speakers:
        _replace_counts(db, session, speaker, counts.get(speaker.label, Counter()))
    session.corrections_version = corrections.version
    return sum(sum(c.values()) for c in counts.values())


def _replace_counts(
    db: DbSession, session: Session, speaker: SessionSpeaker, counts: Counter[str]
) -> None:
    db.execute(delete(SpeakerWordCount).where(SpeakerWordCount.speaker_id == speaker.id))
    db.add_all(SpeakerWordCount(speaker_id=speaker.id, word=w, count=n) for w, n in counts.items())
    if speaker.claim_type is ClaimType.SELF and speaker.attributed_to_user_id:
        db.execute(delete(WordCount).where(WordCount.speaker_id == speaker.id))
        db.add_all(
            WordCount(
                session_id=session.id,
                speaker_id=speaker.id,
                user_id=speaker.attributed_to_user_id,
                group_id=session.group_id,
                word=w,
                count=n,
            )
            for w, n in counts.items()
        )
