"""Per-session webhooks: when a session becomes ready or fails, POST a small signed JSON event
to the URL given at ``end``.

Delivery is its own RQ job on the webhooks queue (the worker that processed the session does
not wait on anyone's HTTP server) and RQ retries it with backoff. Receivers verify
``X-LahStats-Signature: sha256=HMAC(secret, "<timestamp>.<body>")`` and reject stale
timestamps.

A webhook URL is a request to make our servers POST somewhere, so it goes only to public
addresses: :func:`vet_webhook_url` resolves the host and refuses loopback, private, link-local
(cloud metadata), shared and reserved addresses, at ``end`` and again when sending, and the
POST then connects to the address that was checked (DNS cannot change in between), with the
original host name for TLS and ``Host``. Redirects are not followed. An operator with an
internal receiver sets ``WEBHOOK_ALLOW_PRIVATE_NETWORKS``; production requires https.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import httpx
import redis
import structlog
from rq import Queue, Retry, get_current_job

from config import Settings

SIGNATURE_HEADER = "X-LahStats-Signature"
TIMESTAMP_HEADER = "X-LahStats-Timestamp"


log = structlog.get_logger(__name__)
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookDeliveryError(Exception):
    """The receiver did not accept the event; RQ retries the job."""


class UnsafeWebhookTarget(ValueError):
    """The URL points where webhooks may not go (or nowhere); never retried."""


def vet_webhook_url(url: str, *, allow_private: bool, require_https: bool) -> list[IpAddress]:
    """The addresses ``url``'s host resolves to, if a webhook may be sent there."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeWebhookTarget("webhook_url must be an http(s) URL with a host")
    if require_https and parts.scheme != "https":
        raise UnsafeWebhookTarget("webhook_url must use https")
    addresses = _resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    if not allow_private:
        for address in addresses:
            if not _public(address):
                raise UnsafeWebhookTarget(
                    f"webhook_url's host {parts.hostname} is {address}, not a public address"
                )
    return addresses


def _resolve(host: str, port: int) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeWebhookTarget(f"webhook_url's host {host} does not resolve") from exc
    # scope ids ("fe80::1%eth0") are dropped: such an address is link-local anyway
    return list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))


def _public(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


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
        allow_private=settings.webhook_allow_private_networks,
        require_https=require_https(settings),
        retry=Retry(max=len(delays), interval=delays) if delays else None,
        job_timeout=60,
        failure_ttl=7 * 24 * 3600,
        description=f"webhook session.{status} for {session_id}",
    )


def require_https(settings: Settings) -> bool:
    return settings.environment == "production"


def deliver(
    url: str,
    body: str,
    headers: dict[str, str],
    *,
    allow_private: bool = False,
    require_https: bool = False,
) -> int:
    """POST the event to the address vetted just now; anything but a 2xx raises, so RQ
    retries. A target that is not allowed fails at once, without retries."""
    try:
        address = vet_webhook_url(url, allow_private=allow_private, require_https=require_https)[0]
    except UnsafeWebhookTarget:
        job = get_current_job()
        if job is not None:
            job.retries_left = 0  # DNS now says private: retrying would not make it public
        log.warning("webhook.refused", url=url)
        raise
    parts = urlsplit(url)
    host = f"[{address}]" if address.version == 6 else str(address)
    pinned = urlunsplit(parts._replace(netloc=f"{host}:{parts.port or ''}".rstrip(":")))
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    try:
        with httpx.Client(timeout=10, follow_redirects=False) as client:
            response = client.post(
                pinned,
                content=body,
                headers={**headers, "Host": parts.netloc.rsplit("@", 1)[-1]},
                extensions=extensions,
            )
    except httpx.HTTPError as exc:
        raise WebhookDeliveryError(f"POST {url} failed: {exc}") from exc
    if not response.is_success:
        raise WebhookDeliveryError(f"POST {url} answered {response.status_code}")
    return response.status_code
