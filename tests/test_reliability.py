"""Never lose a session: the reconciler, leases, attempts, and concurrent requests — on real
Postgres, real Redis and a real HTTP server."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
from rq import Queue
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session as DbSession

from db import create_session_factory
from models import AudioChunk, Session, SessionStatus
from processing.reconcile import reconcile
from queueing.jobs import enqueue_processing
from tests.factories import Phone, group_session
from tests.paths import CORPUS

WAV = CORPUS / "asr_en/pocketsphinx_librivox/sense_and_sensibility_01_austen_64kb-0870.wav"


def _processing_session(db: DbSession, **fields) -> uuid.UUID:
    session = group_session(db, SessionStatus.PROCESSING, **fields)
    db.add(
        AudioChunk(
            session_id=session.id, chunk_number=0, storage_key="k", sha256="0" * 64, size_bytes=1
        )
    )
    db.commit()
    return session.id


def test_reconciler_requeues_sessions_whose_jobs_vanished(settings, redis_conn):
    """Redis flushed (or restarted without persistence) while sessions waited: nothing lost."""
    factory = create_session_factory(create_engine(settings.sqlalchemy_url))
    with factory() as db:
        waiting = [_processing_session(db) for _ in range(3)]
    for session_id in waiting:
        enqueue_processing(redis_conn, settings, session_id, 30)
    queue = Queue(settings.queue_name, connection=redis_conn)
    assert queue.count == 3

    report = reconcile(factory, redis_conn, settings)
    assert report.requeued == [] and report.alive == 3  # queued jobs are left alone

    redis_conn.flushdb()
    report = reconcile(factory, redis_conn, settings)
    assert sorted(report.requeued) == sorted(waiting)
    assert sorted(queue.job_ids) == sorted(str(s) for s in waiting)
    assert queue.fetch_job(str(waiting[0])).timeout == settings.job_timeout_floor_s  # type: ignore[union-attr]


def test_reconciler_requeues_a_session_whose_worker_died(settings, redis_conn):
    """A worker took the session (lease), then died: the lease ran out, the job is gone."""
    factory = create_session_factory(create_engine(settings.sqlalchemy_url))
    expired = datetime.now(UTC) - timedelta(seconds=5)
    live = datetime.now(UTC) + timedelta(minutes=5)
    with factory() as db:
        dead = _processing_session(db, attempts=1, lease_expires_at=expired)
        busy = _processing_session(db, attempts=1, lease_expires_at=live)
    report = reconcile(factory, redis_conn, settings)
    assert report.requeued == [dead]
    assert busy not in report.requeued


def test_reconciler_gives_up_after_max_attempts(settings, redis_conn):
    factory = create_session_factory(create_engine(settings.sqlalchemy_url))
    expired = datetime.now(UTC) - timedelta(seconds=5)
    with factory() as db:
        doomed = _processing_session(db, attempts=settings.max_attempts, lease_expires_at=expired)
    report = reconcile(factory, redis_conn, settings)
    assert report.failed == [doomed]
    with factory() as db:
        session = db.get(Session, doomed)
        assert session is not None and session.status is SessionStatus.FAILED
        assert f"gave up after {settings.max_attempts} attempts" in (session.error_message or "")
    assert Queue(settings.queue_name, connection=redis_conn).count == 0


def test_concurrent_uploads_of_one_chunk_store_exactly_one_row(live_server, make_user, settings):
    user = make_user()
    with httpx.Client(base_url=live_server) as http:
        _, session_id = Phone(http, user.headers).session()
    data = WAV.read_bytes()

    def upload(_: int) -> int:
        resp = httpx.post(
            f"{live_server}/sessions/{session_id}/upload",
            files={"file": ("c.wav", data, "audio/wav")},
            data={"chunk_number": "0"},
            headers=user.headers,
            timeout=30,
        )
        return resp.status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(upload, range(8)))
    assert codes.count(201) == 1 and codes.count(200) == 7, codes
    engine = create_engine(settings.sqlalchemy_url)
    with DbSession(engine) as db:
        rows = db.scalar(select(func.count()).where(AudioChunk.session_id == uuid.UUID(session_id)))
    engine.dispose()
    assert rows == 1
    stored = list((settings.storage_dir / "sessions" / session_id / "chunks").iterdir())
    assert len(stored) == 1


def test_concurrent_ends_enqueue_once(live_server, make_user, redis_conn, settings):
    user = make_user()
    with httpx.Client(base_url=live_server) as http:
        phone = Phone(http, user.headers)
        _, session_id = phone.session()
        phone.upload(session_id, 0, WAV)

    def end(_: int) -> int:
        return httpx.post(
            f"{live_server}/sessions/{session_id}/end", headers=user.headers, timeout=30
        ).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(end, range(6)))
    assert codes == [202] * 6
    queue = Queue(settings.queue_name, connection=redis_conn)
    assert queue.job_ids == [session_id]


def test_a_second_delivery_of_a_session_is_refused_while_the_first_holds_it(settings):
    """Two workers, one session (a duplicate job): only one takes it."""
    from processing.rows import Attempt, take

    factory = create_session_factory(create_engine(settings.sqlalchemy_url))
    with factory() as db:
        session_id = _processing_session(db)
    lease = timedelta(minutes=5)
    first = take(factory, session_id, lease, max_attempts=3)
    second = take(factory, session_id, lease, max_attempts=3)
    assert isinstance(first, Attempt) and first.number == 1
    assert second is None
    with factory() as db:
        session = db.get(Session, session_id)
        assert session is not None and session.attempts == 1


def test_job_timeout_scales_with_the_audio(settings):
    from queueing.jobs import job_timeout

    assert job_timeout(settings, 60) == settings.job_timeout_floor_s
    three_hours = job_timeout(settings, 3 * 3600)
    assert three_hours == 3 * 3600 * settings.job_timeout_factor
    assert three_hours > settings.job_timeout_floor_s
