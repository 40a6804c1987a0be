"""What integrators and operators see while a real session is processed: server-sent events,
a signed webhook (retried after a failure), and Prometheus metrics that move — over a real
uvicorn server, real Redis and Postgres, a real worker and the real models."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import httpx
import pytest
from prometheus_client import REGISTRY

from queueing.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, webhook_secret
from tests.factories import Phone, burst_worker, drain_queues, follow_events, statuses
from tests.paths import REPO

CHUNK = REPO / "samples" / "chunk_002.wav"


class _Receiver(BaseHTTPRequestHandler):
    """A webhook receiver that refuses the first delivery, then accepts."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    answers: ClassVar[list[int]] = [500, 200]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(self.answers[min(len(self.received), len(self.answers)) - 1])
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


@pytest.mark.slow
def test_events_webhook_and_metrics_follow_a_session(
    live_server, make_user, settings, redis_conn, models, receiver, monkeypatch
):
    monkeypatch.setattr(settings, "webhook_retry_delays_s", [0, 0])
    monkeypatch.setattr(settings, "webhook_allow_private_networks", True)  # the receiver's
    finished_before = REGISTRY.get_sample_value("lahstats_jobs_finished_total") or 0
    user = make_user()
    with httpx.Client(base_url=live_server) as http:
        session_id = Phone(http, user.headers).record([CHUNK], webhook_url=receiver)

    followed: list[tuple[str, dict]] = []
    reader = threading.Thread(
        target=follow_events,
        args=(f"{live_server}/sessions/{session_id}/events", user.headers, followed),
    )
    reader.start()
    drain_queues(settings, redis_conn, models)
    reader.join(timeout=60)
    assert not reader.is_alive(), "the event stream did not end with the session"

    events = statuses(followed)
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress) and progress[-1] == 100
    assert events[-1]["status"] == "ready_for_claiming"
    assert len(events) >= 3  # queued, at least one stage, done

    assert len(_Receiver.received) == 2  # refused once, retried, accepted
    headers, body = _Receiver.received[-1]
    event = json.loads(body)
    assert event == {
        "event": "session.ready_for_claiming",
        "session_id": session_id,
        "status": "ready_for_claiming",
        "error_message": None,
    }
    timestamp = int(headers[TIMESTAMP_HEADER])
    assert headers[SIGNATURE_HEADER] == sign(webhook_secret(settings), timestamp, body.decode())

    assert REGISTRY.get_sample_value("lahstats_jobs_finished_total") == finished_before + 1
    assert REGISTRY.get_sample_value("lahstats_stage_seconds_count", {"stage": "diarizing"})
    metrics = httpx.get(f"{live_server}/metrics").text
    assert 'route="/sessions/{session_id}/upload"' in metrics
    assert 'lahstats_sessions{status="ready_for_claiming"} 1.0' in metrics
    assert "lahstats_queue_depth 0.0" in metrics


def test_events_of_another_groups_session_are_404(live_server, make_user):
    owner, stranger = make_user(), make_user()
    with httpx.Client(base_url=live_server) as http:
        _, session_id = Phone(http, owner.headers).session()
    resp = httpx.get(f"{live_server}/sessions/{session_id}/events", headers=stranger.headers)
    assert resp.status_code == 404


def test_webhook_url_must_be_http(client, make_user):
    phone = Phone(client, make_user().headers)
    _, session_id = phone.session()
    resp = phone.end(session_id, webhook_url="file:///etc/passwd")
    assert resp.status_code == 422


def test_webhook_retries_wait_out_their_backoff(settings, redis_conn, receiver, monkeypatch):
    """A refused delivery is scheduled for later; the worker's maintenance releases it once
    the delay is over (no forked RQ scheduler), and the retry is delivered."""
    import time
    import uuid

    from queueing.webhooks import enqueue_event

    monkeypatch.setattr(settings, "webhook_retry_delays_s", [1])
    monkeypatch.setattr(settings, "webhook_allow_private_networks", True)
    enqueue_event(redis_conn, settings, receiver, uuid.uuid4(), "failed", "boom")
    with burst_worker(settings, redis_conn) as worker:
        worker.work(burst=True)
        assert len(_Receiver.received) == 1  # refused; the retry waits in the scheduled registry
        worker.work(burst=True)
        assert len(_Receiver.received) == 1  # not before its delay
        time.sleep(1.2)
        worker.run_maintenance_tasks()
        worker.work(burst=True)
    assert len(_Receiver.received) == 2
    assert json.loads(_Receiver.received[-1][1])["error_message"] == "boom"
