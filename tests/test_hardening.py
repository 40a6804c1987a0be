"""What an outside probe found, closed as classes: bodies refused before they are read, odd
text answered with a clear 422, every response counted in /metrics, no chunk object without a
row, no webhook to an internal address, another member's name kept per group, one status rule.
Real uvicorn, Postgres, Redis and storage throughout."""

from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session as DbSession

from backend.main import create_app
from db import create_session_factory
from models import AudioChunk, SessionStatus
from processing.sweep import sweep_orphan_chunks
from queueing.webhooks import UnsafeWebhookTarget, enqueue_event, vet_webhook_url, webhook_queue
from storage import chunk_folder, chunk_key, create_storage
from tests.factories import Phone, drain_queues, group_session
from tests.paths import REPO

CHUNK = REPO / "samples" / "chunk_002.wav"


# --- 1. bodies -------------------------------------------------------------------------------


def _raw_request(base: str, head: str, body: bytes = b"", *, wait_s: float = 10) -> bytes:
    """Send ``head`` (and ``body``) on a raw socket and read whatever comes back in time."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        deadline = time.monotonic() + wait_s
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            part = sock.recv(65536)
            if not part:
                break
            answer += part
        return answer


def _post_head(path: str, length: int | None, headers: dict[str, str]) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    return "\r\n".join(lines) + "\r\n\r\n"


def test_a_huge_declared_body_is_refused_before_a_byte_is_read(live_server, make_user):
    """300 MB declared and none sent: the answer comes at once, with or without a token."""
    user = make_user()
    with httpx.Client(base_url=live_server) as http:
        _, session_id = Phone(http, user.headers).session()
    multipart = {"Content-Type": "multipart/form-data; boundary=x"}
    no_token: dict[str, str] = {}
    for headers in (no_token, user.headers):
        head = _post_head(f"/sessions/{session_id}/upload", 300_000_000, {**multipart, **headers})
        answer = _raw_request(live_server, head)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b'"payload_too_large"' in answer
    # a JSON route takes kilobytes, not the upload's megabytes
    head = _post_head("/groups", 1_000_000, {"Content-Type": "application/json", **user.headers})
    assert _raw_request(live_server, head).startswith(b"HTTP/1.1 413")


def test_strangers_are_answered_before_their_upload_is_read(live_server, make_user):
    """A body within the limit but never sent: 401 (no token) or 404 (not your session)
    arrives anyway — the server did not wait to read it first."""
    owner, stranger = make_user(), make_user()
    with httpx.Client(base_url=live_server) as http:
        _, session_id = Phone(http, owner.headers).session()
    multipart = {"Content-Type": "multipart/form-data; boundary=x"}
    path = f"/sessions/{session_id}/upload"
    assert _raw_request(live_server, _post_head(path, 1_000_000, multipart)).startswith(
        b"HTTP/1.1 401"
    )
    head = _post_head(path, 1_000_000, {**multipart, **stranger.headers})
    assert _raw_request(live_server, head).startswith(b"HTTP/1.1 404")


def test_a_chunked_body_is_cut_off_at_the_limit(live_server, make_user, settings, monkeypatch):
    monkeypatch.setattr(settings, "max_upload_bytes", 200_000)
    user = make_user()
    with httpx.Client(base_url=live_server) as http:
        _, session_id = Phone(http, user.headers).session()
    piece = b"x" * 16_384
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(20)) + b"0\r\n\r\n"
    head = _post_head("/groups", None, {"Content-Type": "application/json", **user.headers})
    assert _raw_request(live_server, head, chunked).startswith(b"HTTP/1.1 413")

    boundary = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
    body = boundary + b"Content-Type: audio/wav\r\n\r\nRIFF" + b"\0" * 400_000
    pieces = [body[i : i + 16_384] for i in range(0, len(body), 16_384)]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    head = _post_head(
        f"/sessions/{session_id}/upload",
        None,
        {"Content-Type": "multipart/form-data; boundary=x", **user.headers},
    )
    assert _raw_request(live_server, head, chunked).startswith(b"HTTP/1.1 413")
    storage = create_storage(settings)
    assert storage.list(chunk_folder(uuid.UUID(session_id))) == []


# --- 2. odd text: every JSON field is fuzzed with it in test_fuzz.py -------------------------


def test_a_part_content_type_that_is_not_a_media_type_is_a_422(client, make_user):
    phone = Phone(client, make_user().headers)
    _, session_id = phone.session()
    for content_type in (b"audio/" + b"x" * 200, b"audio/wav\x01"):
        body = (
            b'--x\r\nContent-Disposition: form-data; name="chunk_number"\r\n\r\n0\r\n'
            b'--x\r\nContent-Disposition: form-data; name="file"; filename="c.wav"\r\n'
            b"Content-Type: " + content_type + b"\r\n\r\n" + CHUNK.read_bytes() + b"\r\n--x--\r\n"
        )
        answer = client.post(
            f"/sessions/{session_id}/upload",
            content=body,
            headers={**phone.headers, "Content-Type": "multipart/form-data; boundary=x"},
        )
        assert answer.status_code == 422, (content_type, answer.text)
    stored = phone.upload(session_id, 0, CHUNK, "Audio/WAV; codecs=1")
    assert stored.status_code == 201, stored.text


def test_names_are_stored_normalised(client, make_user):
    user = make_user()
    created = client.post("/groups", json={"name": "  Cafe\u0301  "}, headers=user.headers)
    assert created.json()["name"] == "Caf\u00e9"


# --- 3. metrics ------------------------------------------------------------------------------


def _requests_counted(route: str, method: str, status: int) -> float:
    labels = {"route": route, "method": method, "status": str(status)}
    return REGISTRY.get_sample_value("lahstats_http_request_seconds_count", labels) or 0


def test_every_response_is_counted_500s_and_413s_included(settings, make_user):
    app = create_app(settings)

    @app.get("/broken")
    def broken() -> None:
        raise RuntimeError("a bug")

    user = make_user()
    before_500 = _requests_counted("/broken", "GET", 500)
    before_413 = _requests_counted("unmatched", "POST", 413)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/broken").status_code == 500
        big = client.post("/groups", content=b"{" + b" " * 70_000 + b"}", headers=user.headers)
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "payload_too_large"
        text = client.get("/metrics").text
    assert _requests_counted("/broken", "GET", 500) == before_500 + 1
    assert _requests_counted("unmatched", "POST", 413) == before_413 + 1
    assert 'route="/broken",status="500"' in text


def test_metrics_need_the_scraper_token_when_one_is_set(settings, monkeypatch):
    monkeypatch.setattr(settings, "metrics_token", SecretStr("scrape-me"))
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        answer = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert answer.status_code == 200 and "lahstats_sessions" in answer.text
    monkeypatch.setattr(settings, "metrics_token", None)
    monkeypatch.setattr(settings, "environment", "production")
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 404


# --- 4. no object without a row --------------------------------------------------------------


def test_racing_uploads_and_ends_leave_no_object_without_a_row(live_server, make_user, settings):
    user = make_user()
    data = CHUNK.read_bytes()
    rng = random.Random(7)
    sessions: list[str] = []
    answers: list[int] = []
    with httpx.Client(base_url=live_server, timeout=30) as http:
        for _ in range(6):
            phone = Phone(http, user.headers)
            _, session_id = phone.session()
            phone.upload(session_id, 0, CHUNK)
            sessions.append(session_id)

        def upload(session_id: str, number: int) -> None:
            # same number twice with other bytes for some: conflicts race too
            payload = data if number % 3 else data + bytes([number])
            answer = http.post(
                f"/sessions/{session_id}/upload",
                files={"file": ("c.wav", payload, "audio/wav")},
                data={"chunk_number": str(number % 4 + 1)},
                headers=user.headers,
            )
            answers.append(answer.status_code)

        def end(session_id: str) -> None:
            time.sleep(rng.uniform(0, 0.15))
            answers.append(
                http.post(f"/sessions/{session_id}/end", headers=user.headers).status_code
            )

        threads = [
            threading.Thread(target=upload, args=(s, n)) for s in sessions for n in range(8)
        ] + [threading.Thread(target=end, args=(s,)) for s in sessions]
        rng.shuffle(threads)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert 500 not in answers and 409 in answers and 201 in answers, answers
    storage = create_storage(settings)
    engine = create_engine(settings.sqlalchemy_url)
    with DbSession(engine) as db:
        for session_id in sessions:
            rows = set(
                db.scalars(
                    select(AudioChunk.storage_key).where(
                        AudioChunk.session_id == uuid.UUID(session_id)
                    )
                )
            )
            assert set(storage.list(chunk_folder(uuid.UUID(session_id)))) == rows
    engine.dispose()


def test_the_sweeper_deletes_strays_of_ended_sessions_only(settings):
    engine = create_engine(settings.sqlalchemy_url)
    storage = create_storage(settings)
    with DbSession(engine) as db:
        ended = group_session(db, SessionStatus.PROCESSING)
        recording = group_session(db, SessionStatus.RECORDING, ended_at=None)
        kept = chunk_key(ended.id, 0, "a" * 64)
        db.add(
            AudioChunk(
                session_id=ended.id, chunk_number=0, storage_key=kept, sha256="a" * 64, size_bytes=1
            )
        )
        db.commit()
        stray = chunk_key(ended.id, 1, "b" * 64)  # its upload died before the commit
        in_flight = chunk_key(recording.id, 0, "c" * 64)
        for key in (kept, stray, in_flight):
            storage.put(key, open(CHUNK, "rb"), "audio/wav")  # noqa: SIM115
        deleted = sweep_orphan_chunks(create_session_factory(engine), storage, None)
        assert deleted == [stray]
        assert storage.list(chunk_folder(ended.id)) == [kept]
        assert storage.list(chunk_folder(recording.id)) == [in_flight]
    engine.dispose()


# --- 5. webhooks go to public addresses only -------------------------------------------------

INTERNAL = [
    "http://127.0.0.1:8000/hook",
    "http://localhost/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_a_webhook_to_an_internal_address_is_refused_at_end(client, make_user, url):
    user = make_user()
    phone = Phone(client, user.headers)
    _, session_id = phone.session()
    assert phone.upload(session_id, 0, CHUNK).status_code == 201
    answer = phone.end(session_id, webhook_url=url)
    assert answer.status_code == 422, answer.text
    assert "not a public address" in answer.json()["error"]["message"]
    status = client.get(f"/sessions/{session_id}/status", headers=user.headers).json()
    assert status["status"] == "recording"  # nothing changed; the phone can end again


def test_operators_can_allow_an_internal_receiver(client, make_user, settings, monkeypatch):
    monkeypatch.setattr(settings, "webhook_allow_private_networks", True)
    phone = Phone(client, make_user().headers)
    _, session_id = phone.session()
    phone.upload(session_id, 0, CHUNK)
    answer = phone.end(session_id, webhook_url="http://10.0.0.5/hook")
    assert answer.status_code == 202


def test_public_addresses_pass_and_production_wants_https():
    # literal addresses: vetted without any traffic
    assert [str(a) for a in vet_webhook_url("https://8.8.8.8/h", **_DEFAULTS)] == ["8.8.8.8"]
    vet_webhook_url("http://[2001:4860:4860::8888]/h", **_DEFAULTS)
    with pytest.raises(UnsafeWebhookTarget, match="https"):
        vet_webhook_url("http://8.8.8.8/h", allow_private=False, require_https=True)
    with pytest.raises(UnsafeWebhookTarget, match="does not resolve"):
        vet_webhook_url("https://no-such-host.invalid/h", **_DEFAULTS)


_DEFAULTS: dict[str, Any] = {"allow_private": False, "require_https": False}


def test_delivery_checks_again_when_sending_and_does_not_retry(
    settings, redis_conn, monkeypatch, webhook_receiver
):
    """DNS can change between `end` and the POST: the worker resolves again, refuses a
    private answer, and does not schedule retries for it."""
    url, received = webhook_receiver
    monkeypatch.setattr(settings, "webhook_retry_delays_s", [1, 1])
    enqueue_event(redis_conn, settings, url, uuid.uuid4(), "ready_for_claiming", None)
    queue = webhook_queue(redis_conn, settings)
    drain_queues(settings, redis_conn)
    assert received == []
    assert queue.failed_job_registry.count == 1
    assert queue.scheduled_job_registry.count == 0


def test_delivery_connects_to_the_vetted_address_with_the_host_name(
    settings, redis_conn, monkeypatch, webhook_receiver
):
    url, received = webhook_receiver
    monkeypatch.setattr(settings, "webhook_allow_private_networks", True)
    enqueue_event(redis_conn, settings, url, uuid.uuid4(), "ready_for_claiming", None)
    drain_queues(settings, redis_conn)
    assert len(received) == 1
    assert received[0]["host"] == url.split("/")[2]  # localhost:PORT, not the address


@pytest.fixture
def webhook_receiver():
    """A receiver reached by the name ``localhost`` (which resolves to loopback)."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[dict[str, str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            received.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_port}/hook", received
    server.shutdown()


# --- 6. names --------------------------------------------------------------------------------


def test_a_name_given_by_another_member_is_a_nickname_in_that_group(client, make_user):
    owner, friend, other = make_user(), make_user(), make_user()
    first = Phone(client, owner.headers).group()
    second = Phone(client, other.headers).group()
    for group, adder, nickname in ((first, owner, "Ah Beng"), (second, other, None)):
        body: dict[str, Any] = {"user_id": str(friend.id)}
        if nickname:
            body["display_name"] = nickname
        added = client.post(f"/groups/{group}/members", json=body, headers=adder.headers)
        assert added.status_code == 201 and added.json()["display_name"] == nickname

    def names(group: str) -> dict[str, str | None]:
        detail = client.get(f"/groups/{group}", headers=friend.headers).json()
        return {m["user_id"]: m["display_name"] for m in detail["members"]}

    assert names(first)[str(friend.id)] == "Ah Beng"
    assert names(second)[str(friend.id)] is None  # the nickname stayed in its group
    assert client.get("/me", headers=friend.headers).json()["display_name"] is None
    mine = client.patch("/me", json={"display_name": "Wei Ling"}, headers=friend.headers)
    assert mine.status_code == 200 and mine.json()["display_name"] == "Wei Ling"
    assert names(first)[str(friend.id)] == names(second)[str(friend.id)] == "Wei Ling"
    stats = client.get(f"/groups/{first}/stats", headers=owner.headers).json()
    assert {m["display_name"] for m in stats["members"]} == {None, "Wei Ling"}


# --- 8. one status rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"name":', "application/json"),
        (b"\xff\xfe{}", "application/json"),
        (b'["name"]', "application/json"),
        (b"", "application/json"),
        (b'{"name": "g"}', "text/plain"),
        (b"name=g", "application/x-www-form-urlencoded"),
    ],
)
def test_a_malformed_body_is_always_422(client, make_user, body, content_type):
    user = make_user()
    answer = client.post(
        "/groups", content=body, headers={**user.headers, "Content-Type": content_type}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "validation_error"


def test_malformed_multipart_is_422_and_the_rule_is_documented(client, make_user):
    phone = Phone(client, make_user().headers)
    _, session_id = phone.session()
    for body, content_type in (
        (b'--x\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc', "multipart/form-data"),
        (b"not multipart at all", "multipart/form-data; boundary=x"),
        (b'{"chunk_number": 0}', "application/json"),
    ):
        answer = client.post(
            f"/sessions/{session_id}/upload",
            content=body,
            headers={**phone.headers, "Content-Type": content_type},
        )
        assert answer.status_code == 422, (body, answer.text)
    answer = phone.upload(session_id, "zero", CHUNK)
    assert answer.status_code == 422
    spec = client.get("/openapi.json").json()
    statuses = {
        code for item in spec["paths"].values() for op in item.values() for code in op["responses"]
    }
    assert "400" not in statuses


def test_paths_are_exact_and_head_is_not_served(client):
    """Decisions written in the README: no slash redirects (they would be built from the
    Host header), and HEAD is answered 405 with the allowed methods."""
    answer = client.get("/health/live/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert answer.status_code == 404 and "location" not in answer.headers
    answer = client.head("/health/live")
    assert answer.status_code == 405 and answer.headers["allow"] == "GET"
