"""Status polls and event streams at scale: answered from the Redis cache that every commit
writes, never older than what a client has seen, still authorised, and with a database load
that does not grow with the number of streams (real Postgres, Redis, uvicorn, worker, models)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import event, select

import lifecycle
from backend.main import create_app
from backend.schemas import SessionStatusPublic
from lifecycle import Stage
from models import Session
from processing.progress import ProgressReporter
from queueing import status_cache
from queueing.status_cache import StatusSnapshot
from tests.factories import Phone, drain_queues, follow_events, statuses
from tests.paths import REPO

CHUNK = REPO / "samples" / "chunk_002.wav"


def test_the_api_is_served_on_uvloop_and_httptools():
    """uvicorn[standard]'s event loop and HTTP parser are installed, so uvicorn's "auto"
    (what ``lahstats api`` and the benchmarks run) picks them."""

    async def app(scope: object, receive: object, send: object) -> None:
        pass

    config = uvicorn.Config(app)
    config.load()
    assert config.http_protocol_class.__module__ == "uvicorn.protocols.http.httptools_impl"
    loop_factory = config.get_loop_factory()
    assert loop_factory is not None and loop_factory.__module__ == "uvloop"


def _url(session_id: str) -> str:
    return f"/sessions/{session_id}/status"


def _version(response: httpx.Response) -> int:
    return int(response.headers["etag"].strip('"').split(".")[1])


def test_a_poll_answers_304_until_the_status_changes(client, make_user):
    user = make_user()
    phone = Phone(client, user.headers)
    _, session_id = phone.session()
    first = client.get(_url(session_id), headers=user.headers)
    assert first.status_code == 200
    assert SessionStatusPublic.model_validate(first.json()).status == "recording"
    etag = first.headers["etag"]

    again = client.get(_url(session_id), headers={**user.headers, "If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)

    assert phone.upload(session_id, 0, CHUNK).status_code == 201  # the chunk count moved
    uploaded = client.get(_url(session_id), headers={**user.headers, "If-None-Match": etag})
    assert uploaded.status_code == 200 and uploaded.json()["chunks_uploaded"] == 1
    etag = uploaded.headers["etag"]
    assert (
        client.get(_url(session_id), headers={**user.headers, "If-None-Match": etag}).status_code
        == 304
    )
    assert phone.end(session_id).status_code == 202
    changed = client.get(_url(session_id), headers={**user.headers, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json() == {
        "status": "processing",
        "progress": 0,
        "stage": "queued",
        "error_message": None,
        "warnings": [],
        "chunks_uploaded": 1,
        "chunks_heard": 0,
    }
    assert _version(changed) > _version(first)

    # another session's ETag, a list without this one, or garbage never make a 304
    other = f'"{uuid.uuid4().hex}.{_version(changed)}"'
    for tag in (other, f"{other}, W/{other}", "garbage", '"."', "*"):
        answer = client.get(_url(session_id), headers={**user.headers, "If-None-Match": tag})
        assert answer.status_code == 200, tag
    # one matching ETag in a list is enough
    listed = f"{other}, {changed.headers['etag']}"
    answer = client.get(_url(session_id), headers={**user.headers, "If-None-Match": listed})
    assert answer.status_code == 304


def test_authorization_holds_with_the_cache_warm(client, make_user):
    owner, stranger, newcomer = make_user(), make_user(), make_user()
    group_id, session_id = Phone(client, owner.headers).session()
    assert client.get(_url(session_id), headers=owner.headers).status_code == 200  # warm now

    refused = client.get(_url(session_id), headers=stranger.headers)
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "session_not_found")
    assert client.get(_url(session_id)).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert client.get(_url(session_id), headers=bad).status_code == 401
    assert client.get(_url(str(uuid.uuid4())), headers=owner.headers).status_code == 404

    assert client.get(_url(session_id), headers=newcomer.headers).status_code == 404
    added = client.post(
        f"/groups/{group_id}/members", json={"user_id": str(newcomer.id)}, headers=owner.headers
    )
    assert added.status_code == 201
    assert client.get(_url(session_id), headers=newcomer.headers).status_code == 200


def test_polls_are_answered_from_postgres_while_redis_is_away(settings, make_user):
    settings.redis_url = "redis://127.0.0.1:1/0"  # nothing listens there
    owner, stranger = make_user(), make_user()
    with TestClient(create_app(settings)) as client:
        _, session_id = Phone(client, owner.headers).session()
        first = client.get(_url(session_id), headers=owner.headers)
        assert (first.status_code, first.json()["status"]) == (200, "recording")
        careful = {**owner.headers, "If-None-Match": first.headers["etag"]}
        assert client.get(_url(session_id), headers=careful).status_code == 304
        assert client.get(_url(session_id), headers=stranger.headers).status_code == 404


def test_every_status_change_reaches_the_cache(
    client, make_user, settings, redis_conn, session_factory
):
    # this test's database sessions publish as the worker's and the operator's do
    lifecycle.publish_status(session_factory, redis_conn, settings.status_cache_ttl_s)
    user = make_user()
    session_id = uuid.UUID(Phone(client, user.headers).record([CHUNK]))

    def cached() -> StatusSnapshot:
        entry = redis_conn.get(status_cache.key(session_id))
        assert isinstance(entry, bytes)
        return StatusSnapshot.from_entry(session_id, entry)

    def in_postgres() -> StatusSnapshot:
        with session_factory() as db:
            session = db.get(Session, session_id)
            assert session is not None
            return lifecycle.status_snapshot(session)

    def change(transition, *, commit: bool = True) -> None:
        with session_factory() as db:
            query = select(Session).where(Session.id == session_id).with_for_update()
            transition(db.scalars(query).one())
            db.commit() if commit else db.rollback()

    def progress(stage: Stage, fraction: float) -> None:
        reporter = ProgressReporter(session_factory, session_id, attempt=0, min_interval_s=0)
        reporter.stage = stage
        reporter.report(fraction)

    now = datetime.now(UTC)
    steps = [
        ("diarizing", lambda: progress(Stage.DIARIZING, 0.5), "processing"),
        ("failed", lambda: change(lambda s: lifecycle.fail(s, "diarizing failed: x")), "failed"),
        ("reset", lambda: change(lifecycle.reset), "processing"),
        (
            "ready",
            lambda: change(lambda s: lifecycle.mark_ready(s, speakers=2, warnings=[], now=now)),
            "ready_for_claiming",
        ),
        (
            "completed",
            lambda: change(lambda s: lifecycle.claimed(s, unclaimed_left=0)),
            "completed",
        ),
        ("unclaimed", lambda: change(lifecycle.unclaimed), "ready_for_claiming"),
        ("reset again", lambda: change(lifecycle.reset), "processing"),
        ("gave up", lambda: change(lifecycle.give_up), "failed"),
    ]
    version = cached().version  # `end` published the queued status
    assert cached() == in_postgres()
    for name, step, status in steps:
        step()
        assert cached() == in_postgres(), name
        assert json.loads(cached().body)["status"] == status, name
        assert cached().version > version, name
        version = cached().version
        polled = client.get(_url(str(session_id)), headers=user.headers)
        assert polled.json() == json.loads(in_postgres().body), name

    change(lambda s: lifecycle.reset(s), commit=False)  # rolled back: nothing published
    assert cached() == in_postgres() and cached().version == version
    change(lifecycle.reset)
    progress(Stage.DIARIZING, 0.5)
    version = cached().version
    progress(Stage.DIARIZING, 0.5)  # nothing new: no write, no new version
    progress(Stage.DIARIZING, 0.2)  # progress never goes back
    assert cached().version == in_postgres().version == version


def test_an_older_write_never_replaces_a_newer_status(redis_conn):
    session_id, group_id = uuid.uuid4(), uuid.uuid4()

    def snapshot(version: int, progress: int) -> StatusSnapshot:
        return StatusSnapshot.of(
            session_id,
            group_id,
            version,
            status="processing",
            progress=progress,
            stage="diarizing",
            error_message=None,
            warnings=[],
        )

    assert status_cache.write(redis_conn, snapshot(5, 40), ttl_s=60)
    assert not status_cache.write(redis_conn, snapshot(4, 30), ttl_s=60)  # arrived late
    assert not status_cache.write(redis_conn, snapshot(5, 30), ttl_s=60)
    assert redis_conn.get(status_cache.key(session_id)) == snapshot(5, 40).entry()
    assert 0 < redis_conn.ttl(status_cache.key(session_id)) <= 60
    assert status_cache.write(redis_conn, snapshot(6, 45), ttl_s=60)


def test_a_cache_behind_what_the_client_saw_is_read_through(client, make_user, redis_conn):
    user = make_user()
    session_id = Phone(client, user.headers).record([CHUNK])
    seen = client.get(_url(session_id), headers=user.headers)
    assert seen.json()["status"] == "processing"
    # a status write lost while Redis was away: the entry holds an older version
    key = status_cache.key(uuid.UUID(session_id))
    entry = redis_conn.get(key)
    assert isinstance(entry, bytes)
    current = StatusSnapshot.from_entry(uuid.UUID(session_id), entry)
    older = StatusSnapshot.of(
        current.session_id,
        current.group_id,
        current.version - 1,
        status="recording",
        progress=0,
        stage=None,
        error_message=None,
        warnings=[],
    )
    redis_conn.set(key, older.entry())

    careful = {**user.headers, "If-None-Match": seen.headers["etag"]}
    again = client.get(_url(session_id), headers=careful)
    assert again.status_code == 304  # Postgres asked: still what the client saw
    assert redis_conn.get(key) == current.entry()  # and the cache is mended
    assert client.get(_url(session_id), headers=user.headers).json()["status"] == "processing"


def _poll(url: str, headers: dict[str, str], seen: list[tuple[int, dict]]) -> None:
    """Poll as a careful app does, sending back the last ETag, until the session is done."""
    etag = None
    with httpx.Client(timeout=30) as http:
        while True:
            sent = {**headers, "If-None-Match": etag} if etag else headers
            response = http.get(url, headers=sent)
            assert response.status_code in (200, 304), response.text
            if response.status_code == 200:
                seen.append((_version(response), response.json()))
                etag = response.headers["etag"]
                if response.json()["status"] != "processing":
                    return
            time.sleep(0.02)


@pytest.mark.slow
def test_polls_and_streams_follow_a_processing_run_forward(
    live_server, live_app, make_user, settings, redis_conn, models
):
    user = make_user()
    with httpx.Client(base_url=live_server) as http:
        session_id = Phone(http, user.headers).record([CHUNK])
    queries = [0]

    def count(*_: object) -> None:
        queries[0] += 1

    streams = 40
    events: list[list[tuple[str, dict]]] = [[] for _ in range(streams)]
    opened = [threading.Event() for _ in range(streams)]
    followers = [
        threading.Thread(
            target=follow_events,
            args=(f"{live_server}/sessions/{session_id}/events", user.headers, e, o),
        )
        for e, o in zip(events, opened, strict=True)
    ]
    for follower in followers:
        follower.start()
    assert all(o.wait(60) for o in opened), "a stream did not open"
    polls: list[tuple[int, dict]] = []
    status_url = f"{live_server}{_url(session_id)}"
    poller = threading.Thread(target=_poll, args=(status_url, user.headers, polls))
    poller.start()
    time.sleep(0.5)  # the poller's first answer: its membership is known from here on
    event.listen(live_app.state.resources.engine, "before_cursor_execute", count)
    started = time.monotonic()

    drain_queues(settings, redis_conn, models)
    for thread in (*followers, poller):
        thread.join(timeout=60)
        assert not thread.is_alive(), "a stream or the poller did not end with the session"
    watched_s = time.monotonic() - started
    event.remove(live_app.state.resources.engine, "before_cursor_execute", count)

    versions = [version for version, _ in polls]
    assert versions == sorted(versions), "a poll went backwards"
    progress = [body["progress"] for _, body in polls]
    assert progress == sorted(progress) and polls[-1][1]["status"] == "ready_for_claiming"
    for stream in map(statuses, events):
        assert [e["progress"] for e in stream] == sorted(e["progress"] for e in stream)
        assert stream[-1]["status"] == "ready_for_claiming" and stream[-1]["progress"] == 100
    # Streams polling the database each would make streams / events_poll_interval_s queries
    # a second; the shared watcher reads Redis, and Postgres only for a missing entry.
    per_stream_polling = streams * watched_s / settings.events_poll_interval_s
    assert queries[0] <= 10, (queries[0], per_stream_polling)


def test_a_served_api_keeps_its_startup_heap_out_of_the_collector(settings):
    """Full collections over the imports' heap stalled requests in flight (status p99 70 ms
    against 20 ms with it frozen, BENCHMARKS.md); outside the tests the lifespan freezes it."""
    import gc

    before = gc.get_freeze_count()
    try:
        served = settings.model_copy(update={"environment": "development"})
        with TestClient(create_app(served)) as http:
            assert http.get("/health/live").status_code == 200
            assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
