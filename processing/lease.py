"""A worker's lease on the session it processes, renewed by a heartbeat thread so that long
stages without progress reports keep it. If the worker dies (SIGKILL, OOM) the heartbeat dies
with it, the lease runs out, and the reconciler hands the session to another worker."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from models import Session, SessionStatus

log = structlog.get_logger(__name__)


@contextmanager
def held_lease(
    session_factory: sessionmaker[DbSession],
    session_id: uuid.UUID,
    attempt: int,
    lease: timedelta,
) -> Iterator[None]:
    """Renew the lease every third of its length while the block runs."""
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(lease.total_seconds() / 3):
            renew(session_factory, session_id, attempt, lease)

    thread = threading.Thread(target=heartbeat, name=f"lease-{session_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def renew(
    session_factory: sessionmaker[DbSession],
    session_id: uuid.UUID,
    attempt: int,
    lease: timedelta,
) -> None:
    """Push this attempt's lease forward; a database hiccup only skips one renewal."""
    try:
        with session_factory() as db:
            db.execute(
                update(Session)
                .where(
                    Session.id == session_id,
                    Session.status == SessionStatus.PROCESSING,
                    Session.attempts == attempt,
                )
                .values(lease_expires_at=datetime.now(UTC) + lease)
            )
            db.commit()
    except SQLAlchemyError as exc:
        log.warning("processor.lease_renewal_failed", session_id=str(session_id), error=str(exc))
