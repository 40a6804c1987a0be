"""Faults with real processes and real services: a worker SIGKILLed mid-job, SIGTERM during a
job, Postgres cut off under the API and under a running job, Redis flushed with sessions
queued. Each ends with the session processed exactly once, or failed saying why."""

from __future__ import annotations

import signal
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from rq import Queue
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session as DbSession

from backend import crud
from backend.main import create_app
from db import create_session_factory
from models import Segment, Session, SessionSpeaker, SessionStatus
from processing.reconcile import reconcile
from tests.factories import Phone, drain_queues, wav_chunks
from tests.paths import REPO
from tests.tcp_proxy import TcpProxy

CHUNK = REPO / "samples" / "chunk_002.wav"
D1 = "d1_bto_renovation.wav"  # in singlish_dev: 115 s, three voices


def _first_minute(singlish_dev, tmp_path) -> list:
    """d1's first two 30 s chunks (9 target words from its 3 voices): a kill still lands in
    the middle of a chunk's hearing, at half the cost of every run of the whole 115 s."""
    return wav_chunks(singlish_dev / D1, tmp_path)[:2]


def _row(settings, session_id: str) -> Session:
    engine = create_engine(settings.sqlalchemy_url)
    with DbSession(engine) as db:
        session = db.get(Session, uuid.UUID(session_id))
        assert session is not None
        db.expunge(session)
    engine.dispose()
    return session


def _wait_for(settings, session_id: str, done, timeout: float) -> Session:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session = _row(settings, session_id)
        if done(session):
            return session
        time.sleep(0.2)
    raise AssertionError(f"session {session_id} never got there: {_row(settings, session_id)!r}")


def _counts(settings, session_id: str) -> tuple[int, dict[str, dict[str, int]]]:
    engine = create_engine(settings.sqlalchemy_url)
    with DbSession(engine) as db:
        speakers = db.scalars(
            select(SessionSpeaker).where(SessionSpeaker.session_id == uuid.UUID(session_id))
        ).all()
        counts = crud.speaker_word_counts(db, [s.id for s in speakers])
        result = {s.label: counts.get(s.id, {}) for s in speakers}
        segments = sum(s.segment_count for s in speakers)
    engine.dispose()
    return segments, result


@pytest.mark.slow
def test_killed_worker_recovers_and_sigterm_lets_the_job_finish(
    client, make_user, settings, redis_conn, singlish_dev, tmp_path, spawn_worker
):
    user = make_user()
    chunks = _first_minute(singlish_dev, tmp_path)
    phone = Phone(client, user.headers)
    killed_session = phone.record(chunks, num_speakers=3)

    first = spawn_worker()
    _wait_for(settings, killed_session, lambda s: s.progress >= 15, timeout=120)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert _row(settings, killed_session).status is SessionStatus.PROCESSING

    second = spawn_worker()  # nobody calls the reconciler by hand: the worker does
    recovered = _wait_for(
        settings, killed_session, lambda s: s.status is not SessionStatus.PROCESSING, 180
    )
    assert recovered.status is SessionStatus.READY_FOR_CLAIMING, recovered.error_message
    assert recovered.attempts == 2

    undisturbed = phone.record(chunks, num_speakers=3)
    _wait_for(settings, undisturbed, lambda s: s.progress >= 15, timeout=120)
    second.send_signal(signal.SIGTERM)  # warm shutdown: the current session still finishes
    assert second.wait(timeout=120) == 0
    finished = _row(settings, undisturbed)
    assert finished.status is SessionStatus.READY_FOR_CLAIMING and finished.attempts == 1

    assert _counts(settings, killed_session) == _counts(settings, undisturbed)
    assert sum(sum(c.values()) for c in _counts(settings, killed_session)[1].values()) > 0


@pytest.mark.slow
def test_redis_flushed_with_sessions_queued_loses_nothing(
    client, make_user, settings, redis_conn, models
):
    user = make_user()
    phone = Phone(client, user.headers)
    sessions = [phone.record([CHUNK], num_speakers=2) for _ in range(2)]
    redis_conn.flushdb()
    assert Queue(settings.queue_name, connection=redis_conn).count == 0
    report = reconcile(
        create_session_factory(create_engine(settings.sqlalchemy_url)), redis_conn, settings
    )
    assert sorted(map(str, report.requeued)) == sorted(sessions)
    drain_queues(settings, redis_conn, models)
    for session_id in sessions:
        session = _row(settings, session_id)
        assert session.status is SessionStatus.READY_FOR_CLAIMING and session.attempts == 1


def _proxied(settings, proxy: TcpProxy):
    url = settings.database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert url != settings.database_url
    return settings.model_copy(update={"database_url": url})


def test_api_answers_503_while_postgres_is_cut_off_and_recovers(settings, make_user):
    proxy = TcpProxy(("127.0.0.1", 5432))
    user = make_user()
    with TestClient(create_app(_proxied(settings, proxy)), raise_server_exceptions=False) as client:
        assert client.post("/groups", json={"name": "a"}, headers=user.headers).status_code == 201
        proxy.cut()
        resp = client.post("/groups", json={"name": "b"}, headers=user.headers)
        assert resp.status_code == 503
        assert resp.json() == {
            "error": {
                "code": "database_unavailable",
                "message": "The database is unavailable; retry later.",
            }
        }
        assert client.get("/health").status_code == 503
        proxy.restore()
        assert client.post("/groups", json={"name": "c"}, headers=user.headers).status_code == 201
        assert client.get("/health").status_code == 200
    proxy.close()


@pytest.mark.slow
def test_a_job_rides_out_a_database_blip(client, make_user, settings, redis_conn, models):
    """Postgres goes away for a few seconds while the job runs: progress writes are skipped,
    the final save waits with backoff, and the session still ends ready, not failed."""
    import threading

    user = make_user()
    session_id = Phone(client, user.headers).record([CHUNK, CHUNK], num_speakers=2)
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxied = _proxied(settings, proxy)

    def blip() -> None:
        _wait_for(settings, session_id, lambda s: s.stage == "hearing", timeout=120)
        proxy.cut()
        time.sleep(4)
        proxy.restore()

    cutter = threading.Thread(target=blip)
    cutter.start()
    drain_queues(proxied, redis_conn, models)
    cutter.join()
    proxy.close()
    session = _row(settings, session_id)
    assert session.status is SessionStatus.READY_FOR_CLAIMING, session.error_message


def _transcript(settings, session_id: str) -> list[str]:
    engine = create_engine(settings.sqlalchemy_url)
    with DbSession(engine) as db:
        texts = list(
            db.scalars(
                select(Segment.text)
                .where(Segment.session_id == uuid.UUID(session_id))
                .order_by(Segment.start_s)
            )
        )
    engine.dispose()
    return texts


@pytest.mark.slow
def test_a_live_session_survives_kills_in_a_chunk_job_and_in_its_finish(
    client, make_user, settings, singlish_dev, tmp_path, spawn_worker
):
    """SIGKILL a worker while it hears a chunk during recording, and another in the middle of
    the finish: the session still completes once, with the same results as an undisturbed
    run of the same chunks."""
    user = make_user()
    chunks = _first_minute(singlish_dev, tmp_path)
    phone = Phone(client, user.headers)
    _, disturbed = phone.session()
    for number, path in enumerate(chunks):
        assert phone.upload(disturbed, number, path).status_code == 201

    first = spawn_worker()
    _wait_for(settings, disturbed, lambda s: s.chunks_heard >= 1, timeout=180)
    first.send_signal(signal.SIGKILL)  # the next chunk's job was under way
    first.wait()
    assert _row(settings, disturbed).chunks_heard < len(chunks)

    assert phone.end(disturbed, num_speakers=3).status_code == 202
    second = spawn_worker()
    _wait_for(settings, disturbed, lambda s: s.stage == "hearing", timeout=180)
    second.send_signal(signal.SIGKILL)
    second.wait()

    spawn_worker()  # its reconciler finds the finish's lease run out and enqueues it again
    done = _wait_for(
        settings, disturbed, lambda s: s.status is not SessionStatus.PROCESSING, timeout=300
    )
    assert done.status is SessionStatus.READY_FOR_CLAIMING, done.error_message
    assert done.attempts == 2

    undisturbed = phone.record(chunks, num_speakers=3)
    _wait_for(
        settings, undisturbed, lambda s: s.status is not SessionStatus.PROCESSING, timeout=300
    )
    assert _counts(settings, disturbed) == _counts(settings, undisturbed)
    assert _transcript(settings, disturbed) == _transcript(settings, undisturbed)
    assert _transcript(settings, disturbed)
