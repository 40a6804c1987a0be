"""The reconciler: Postgres is the source of truth, Redis only carries work. A session that is
``processing`` with no live job and no live lease lost its job (worker killed, Redis restarted
or flushed, enqueue failed): enqueue it again, or fail it once it has used up its attempts.

Run periodically by every worker between jobs, and by ``lahstats reconcile``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
import structlog
from rq.job import JobStatus
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

import lifecycle
from config import Settings
from models import AudioChunk, Session, SessionStatus
from queueing.jobs import LIVE_STATUSES, job_status, requeue_processing

log = structlog.get_logger(__name__)


@dataclass
class ReconcileReport:
    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    alive: int = 0


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
    if report.requeued or report.failed:
        log.warning(
            "reconcile.acted",
            requeued=[str(s) for s in report.requeued],
            failed=[str(s) for s in report.failed],
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
