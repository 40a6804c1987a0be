"""Per-session webhooks: when a session becomes ready or fails, POST a small signed JSON event
to the URL given at ``end``.

Delivery is its own RQ job on the webhooks queue (the worker that processed the session does
not wait on anyone's HTTP server) and RQ retries it with backoff. Receivers verify
``X-LahStats-Signature: sha256=HMAC(secret, "<timestamp>.<body>")`` and reject stale
timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import httpx
import redis
from rq import Queue, Retry

from config import Settings

SIGNATURE_HEADER = "X-LahStats-Signature"
TIMESTAMP_HEADER = "X-LahStats-Timestamp"


class WebhookDeliveryError(Exception):
    """The receiver did not accept the event; RQ retries the job."""


def webhook_queue(connection: redis.Redis, settings: Settings) -> Queue:
    return Queue(f"{settings.queue_name}-webhooks", connection=connection)


def sign(secret: bytes, timestamp: int, body: str) -> str:
    digest = hmac.new(secret, f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_secret(settings: Settings) -> bytes:
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value().encode()
    jwt_secret = settings.supabase_jwt_secret.get_secret_value().encode()
    return hashlib.sha256(b"lahstats-webhook:" + jwt_secret).digest()


def enqueue_event(
    connection: redis.Redis,
    settings: Settings,
    url: str,
    session_id: uuid.UUID,
    status: str,
    error_message: str | None,
) -> None:
    """Queue the delivery of ``session.<status>`` to ``url``; signed now, sent by a worker."""
    body = json.dumps(
        {
            "event": f"session.{status}",
            "session_id": str(session_id),
            "status": status,
            "error_message": error_message,
        },
        separators=(",", ":"),
    )
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(webhook_secret(settings), timestamp, body),
    }
    delays = settings.webhook_retry_delays_s
    webhook_queue(connection, settings).enqueue(
        deliver,
        url,
        body,
        headers,
        retry=Retry(max=len(delays), interval=delays) if delays else None,
        job_timeout=60,
        failure_ttl=7 * 24 * 3600,
        description=f"webhook session.{status} for {session_id}",
    )


def deliver(url: str, body: str, headers: dict[str, str]) -> int:
    """POST the event; anything but a 2xx raises, so RQ retries. Returns the status code."""
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise WebhookDeliveryError(f"POST {url} failed: {exc}") from exc
    if not response.is_success:
        raise WebhookDeliveryError(f"POST {url} answered {response.status_code}")
    return response.status_code
