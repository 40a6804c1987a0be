"""``processing.lease.held_lease`` against real Postgres: the heartbeat keeps this attempt's
lease in the future while the block runs, stops when it ends (however it ends), and never
touches a session this attempt no longer holds."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from models import Session, SessionStatus
from processing.lease import held_lease
from tests.factories import stored_session

LEASE = timedelta(seconds=0.6)  # renewed every 0.2 s
EXPIRED = datetime(2020, 1, 1, tzinfo=UTC)


def _lease(session_factory, session_id: uuid.UUID) -> datetime | None:
    with session_factory() as db:
        session = db.get(Session, session_id)
        assert session is not None
        return session.lease_expires_at


def _wait_for_renewal(session_factory, session_id: uuid.UUID, after: datetime) -> datetime:
    """Poll until the lease runs out later than ``after`` (10 s at most): the new expiry."""
    deadline = time.monotonic() + 10
    while True:
        lease = _lease(session_factory, session_id)
        if lease is not None and lease > after:
            return lease
        assert time.monotonic() < deadline, "the lease was not renewed in time"
        time.sleep(0.02)


def test_the_lease_is_renewed_while_held_and_not_after(session_factory):
    session_id = stored_session(
        session_factory, SessionStatus.PROCESSING, attempts=1, lease_expires_at=EXPIRED
    )
    with held_lease(session_factory, session_id, 1, LEASE):
        first = _wait_for_renewal(session_factory, session_id, datetime.now(UTC))
        assert first <= datetime.now(UTC) + LEASE
        _wait_for_renewal(session_factory, session_id, first)  # and again
    last = _lease(session_factory, session_id)
    time.sleep(3 * LEASE.total_seconds())  # nine renewal periods
    assert _lease(session_factory, session_id) == last


def test_a_lease_this_attempt_lost_is_left_alone(session_factory):
    """Another worker's attempt 2 holds one session; the reconciler failed another. The
    heartbeats of attempt 1 run (a held session beside them is renewed) and change neither."""
    mine = stored_session(
        session_factory, SessionStatus.PROCESSING, attempts=1, lease_expires_at=EXPIRED
    )
    theirs = datetime.now(UTC) + timedelta(minutes=5)
    taken_over = stored_session(
        session_factory, SessionStatus.PROCESSING, attempts=2, lease_expires_at=theirs
    )
    given_up = stored_session(
        session_factory, SessionStatus.FAILED, attempts=1, lease_expires_at=EXPIRED
    )
    with (
        held_lease(session_factory, taken_over, 1, LEASE),
        held_lease(session_factory, given_up, 1, LEASE),
        held_lease(session_factory, mine, 1, LEASE),
    ):
        renewed = EXPIRED
        for _ in range(3):  # three renewals of ours: the other heartbeats ran too
            renewed = _wait_for_renewal(session_factory, mine, renewed)
    assert _lease(session_factory, taken_over) == theirs
    assert _lease(session_factory, given_up) == EXPIRED


def test_the_heartbeat_stops_when_the_block_raises(session_factory):
    session_id = stored_session(
        session_factory, SessionStatus.PROCESSING, attempts=1, lease_expires_at=EXPIRED
    )
    with (
        pytest.raises(RuntimeError, match="stage failed"),
        held_lease(session_factory, session_id, 1, LEASE),
    ):
        raise RuntimeError("stage failed")
    assert f"lease-{session_id}" not in {thread.name for thread in threading.enumerate()}
    time.sleep(2 * LEASE.total_seconds())
    assert _lease(session_factory, session_id) == EXPIRED
