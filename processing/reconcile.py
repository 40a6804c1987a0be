"""The reconciler: Postgres is the source of truth, Redis only carries work. A session that is
``processing`` with no live job and no live lease lost its job (worker killed, Redis restarted
or flushed, enqueue failed): enqueue it again, or fail it once it has used up its attempts.
Likewise a chunk of a live session still recording that has no hearing, can be heard (the
chunk before it is uploaded) and has no job: its hearing is enqueued again.

Run periodically by every worker between jobs, and by ``lahstats reconcile``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import redis
import structlog
from rq.job import JobStatus
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

import lifecycle
from config import Settings
from models import AudioChunk, ChunkHearingRow, Session, SessionStatus
from queueing.jobs import (
    LIVE_STATUSES,
    enqueue_hearing,
    hearing_alive,
    job_status,
    requeue_processing,
)

log = structlog.get_logger(__name__)


@dataclass
class ReconcileReport:
    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    alive: int = 0
    # live sessions' chunks whose hearing was enqueued again: (session, chunk number)
    rehearing: list[tuple[uuid.UUID, int]] = field(default_factory=list)


# A chunk uploaded this recently may still be on its way to the queue (the upload enqueues it
# right after its commit): not the reconciler's to enqueue.
UPLOAD_GRACE = timedelta(seconds=30)


def reconcile(
    session_factory: sessionmaker[DbSession], connection: redis.Redis, settings: Settings
) -> ReconcileReport:
    """Re-enqueue (or fail) every ``processing`` session that nothing is working on."""
    report = ReconcileReport()
    now = datetime.now(UTC)
    with session_factory() as db:
        orphans = db.execute(
            select(Session.id, Session.attempts, Session.duration_s, Session.lease_expires_at)
            .where(
                Session.status == SessionStatus.PROCESSING,
                or_(Session.lease_expires_at.is_(None), Session.lease_expires_at < now),
            )
            .order_by(Session.ended_at)
        ).all()
        notices: list[lifecycle.Notice] = []
        for session_id, attempts, duration_s, lease in orphans:
            if _job_alive(connection, session_id, leased=lease is not None):
                report.alive += 1
            elif attempts >= settings.max_attempts:
                notice = _give_up(db, session_id)
                if notice is not None:
                    notices.append(notice)
                    report.failed.append(session_id)
            else:
                seconds = duration_s or _estimated_seconds(db, session_id, settings)
                requeue_processing(connection, settings, session_id, seconds)
                report.requeued.append(session_id)
        db.commit()
    for notice in notices:
        lifecycle.notify(connection, settings, notice)
    if settings.live_processing:
        report.rehearing = _enqueue_lost_hearings(session_factory, connection, settings, now)
    if report.requeued or report.failed or report.rehearing:
        log.warning(
            "reconcile.acted",
            requeued=[str(s) for s in report.requeued],
            failed=[str(s) for s in report.failed],
            rehearing=[f"{s}:{n}" for s, n in report.rehearing],
        )
    return report


def _job_alive(connection: redis.Redis, session_id: uuid.UUID, *, leased: bool) -> bool:
    """A queued job will run; a started one is alive only while its worker renews the lease
    (``leased`` means a lease was taken and has since run out: that worker is gone)."""
    status = job_status(connection, session_id)
    if status is JobStatus.STARTED:
        return not leased
    return status in LIVE_STATUSES


def _give_up(db: DbSession, session_id: uuid.UUID) -> lifecycle.Notice | None:
    session = db.get(Session, session_id, with_for_update=True)
    if session is None or session.status is not SessionStatus.PROCESSING:
        return None
    return lifecycle.give_up(session)


def _estimated_seconds(db: DbSession, session_id: uuid.UUID, settings: Settings) -> float:
    chunks = db.scalar(select(func.count()).where(AudioChunk.session_id == session_id)) or 0
    return chunks * settings.expected_chunk_seconds


def _enqueue_lost_hearings(
    session_factory: sessionmaker[DbSession],
    connection: redis.Redis,
    settings: Settings,
    now: datetime,
) -> list[tuple[uuid.UUID, int]]:
    """Enqueue the hearing of every chunk of a recording session that has none, could be
    heard, and has no job (Redis flushed, an enqueue failed, a job gave up its retries)."""
    with session_factory() as db:
        uploaded = db.execute(
            select(AudioChunk.session_id, AudioChunk.chunk_number, AudioChunk.created_at)
            .join(Session, Session.id == AudioChunk.session_id)
            .where(Session.status == SessionStatus.RECORDING)
        ).all()
        heard = set(
            db.execute(
                select(ChunkHearingRow.session_id, ChunkHearingRow.chunk_number)
                .join(Session, Session.id == ChunkHearingRow.session_id)
                .where(Session.status == SessionStatus.RECORDING)
            ).all()
        )
    present = {(s, n) for s, n, _ in uploaded}
    lost = [
        (s, n)
        for s, n, created in sorted(uploaded)
        if (s, n) not in heard
        and (n == 0 or (s, n - 1) in present)
        and created < now - UPLOAD_GRACE
        and not hearing_alive(connection, s, n)
    ]
    for session_id, number in lost:
        enqueue_hearing(connection, settings, session_id, number)
    return lost
