"""A session's life has one home (lifecycle.py): its transitions, that nothing else changes a
session's status, and that every way of failing a session notifies alike — the job, the
worker's own give-up and the reconciler's. Real Postgres and Redis."""

from __future__ import annotations

import ast
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine

import lifecycle
import processor
from db import create_session_factory
from lifecycle import Stage
from models import Session, SessionStatus
from processing.reconcile import reconcile
from queueing.webhooks import webhook_queue
from tests.factories import group_session
from tests.paths import REPO

HOOK = "http://10.9.8.7/hook"  # never called: these tests look at the queued event only


def _session(status: SessionStatus, **fields) -> Session:
    return Session(id=uuid.uuid4(), group_id=uuid.uuid4(), status=status, **fields)


def test_the_transitions():
    now = datetime.now(UTC)
    session = _session(SessionStatus.RECORDING, attempts=0)
    lifecycle.end_recording(
        session, num_speakers=3, min_speakers=None, max_speakers=None, webhook_url=HOOK, now=now
    )
    assert (session.status, session.stage, session.progress) == (
        SessionStatus.PROCESSING,
        Stage.QUEUED.value,
        0,
    )
    assert session.num_speakers == 3 and session.ended_at == now
    lifecycle.take(session, lease=timedelta(minutes=5), now=now)
    assert session.attempts == 1 and session.lease_expires_at == now + timedelta(minutes=5)
    lifecycle.release(session)
    assert session.attempts == 0 and session.lease_expires_at is None

    notice = lifecycle.mark_ready(session, speakers=2, warnings=["w"], now=now)
    assert notice == lifecycle.Notice(session.id, SessionStatus.READY_FOR_CLAIMING, HOOK)
    assert (session.progress, session.stage, session.warnings) == (100, "done", ["w"])
    lifecycle.claimed(session, unclaimed_left=1)
    assert session.status is SessionStatus.READY_FOR_CLAIMING
    lifecycle.claimed(session, unclaimed_left=0)
    assert session.status is SessionStatus.COMPLETED
    lifecycle.unclaimed(session)
    assert session.status is SessionStatus.READY_FOR_CLAIMING

    lifecycle.reset(session)
    notice = lifecycle.fail(session, "diarizing failed: x" * 500)
    assert notice.status is SessionStatus.FAILED and len(notice.error_message or "") == 2000
    with pytest.raises(AssertionError):
        lifecycle.end_recording(
            session,
            num_speakers=None,
            min_speakers=None,
            max_speakers=None,
            webhook_url=None,
            now=now,
        )


def test_a_session_nobody_spoke_in_is_completed_saying_so():
    session = _session(SessionStatus.PROCESSING)
    notice = lifecycle.mark_ready(session, speakers=0, warnings=[], now=datetime.now(UTC))
    assert notice.status is SessionStatus.COMPLETED
    assert session.warnings == [lifecycle.NO_SPEECH]


def test_nothing_but_lifecycle_changes_a_session_status():
    """Product code assigns ``.status`` only in lifecycle.py (tests and migrations aside)."""
    offenders = []
    for path in REPO.rglob("*.py"):
        rel = path.relative_to(REPO)
        if rel.parts[0] in {".venv", "tests", "migrations", "bench", "research"}:
            continue
        if rel.name == "lifecycle.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Attribute) and leaf.attr == "status":
                        offenders.append(f"{rel}:{leaf.lineno}")
    assert offenders == []


def _queued_events(redis_conn, settings) -> list[dict]:
    return [json.loads(job.args[1]) for job in webhook_queue(redis_conn, settings).jobs]


def test_the_reconciler_giving_up_notifies_like_the_job(settings, redis_conn):
    engine = create_engine(settings.sqlalchemy_url)
    factory = create_session_factory(engine)
    with factory() as db:
        session = group_session(
            db,
            SessionStatus.PROCESSING,
            attempts=settings.max_attempts,
            webhook_url=HOOK,
            lease_expires_at=datetime.now(UTC) - timedelta(minutes=1),
        )
        session_id = session.id
        db.commit()
    report = reconcile(factory, redis_conn, settings)
    assert report.failed == [session_id]
    [event] = _queued_events(redis_conn, settings)
    assert event["event"] == "session.failed" and event["session_id"] == str(session_id)
    assert event["error_message"].startswith(f"gave up after {settings.max_attempts} attempts")
    engine.dispose()


def test_a_worker_that_finds_the_attempts_used_up_notifies_too(settings, redis_conn):
    engine = create_engine(settings.sqlalchemy_url)
    factory = create_session_factory(engine)
    with factory() as db:
        session = group_session(
            db, SessionStatus.PROCESSING, attempts=settings.max_attempts, webhook_url=HOOK
        )
        session_id = session.id
        db.commit()
    # no models are needed: the job stops at `take`
    pipeline = processor.Pipeline(settings, factory, None, None, redis_conn)  # type: ignore[arg-type]
    processor.run(session_id, pipeline)
    with factory() as db:
        stored = db.get(Session, session_id)
        assert stored is not None and stored.status is SessionStatus.FAILED
    [event] = _queued_events(redis_conn, settings)
    assert event["event"] == "session.failed"
    assert event["error_message"] == stored.error_message
    engine.dispose()
