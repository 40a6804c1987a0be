"""The API's two ASGI middlewares, both pure ASGI (no body buffering):

- :class:`RequestMetricsMiddleware` counts every response by route template and status, 5xx
  and 413 included, outermost so nothing escapes it.
- :class:`BodyLimitMiddleware` puts a ceiling on every request body before the route reads
  it: a declared ``Content-Length`` over the route's limit is answered 413 at once, without
  reading a byte of the body; a body without a length (chunked) is counted as it arrives and
  cut off with 413 as soon as it passes the limit. Chunk uploads may be as large as
  ``MAX_UPLOAD_BYTES`` plus the multipart framing; every other route takes
  ``MAX_REQUEST_BODY_BYTES`` (kilobytes: the JSON bodies are tiny).

Why not Starlette's ``RequestBodyLimitMiddleware`` (FastAPI's ``max_body_size``): it answers
in plain text, not the API's one error shape, and takes a route's limit at decoration time,
while ours come from the settings object the app is built with.
"""

from __future__ import annotations

import json
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.errors import error_body
from config import Settings
from observability import REQUEST_SECONDS

# Room for the multipart boundaries, part headers and the chunk_number field around the file.
MULTIPART_OVERHEAD = 16 * 1024
_UPLOAD_PATH = re.compile(r"^/sessions/[^/]+/upload/?$")


class BodyTooLarge(Exception):
    """Raised from ``receive`` once the body passes its limit; the middleware answers 413."""


def body_limit(settings: Settings, path: str) -> int:
    if _UPLOAD_PATH.match(path):
        return settings.max_upload_bytes + MULTIPART_OVERHEAD
    return settings.max_request_body_bytes


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(self.settings, scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return

        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the app makes of the cut-off body, the answer is 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _refuse(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before we see it
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps(
        error_body("payload_too_large", f"request body is larger than {limit} bytes")
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestMetricsMiddleware:
    """Latency and count by route template (not the raw path: ids would explode the labels)
    and status. An exception escaping the app is counted as the 500 it becomes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:  # on an exception `status` is still 500 unless a response had started
            template = getattr(scope.get("route"), "path", "unmatched")
            REQUEST_SECONDS.labels(template, scope["method"], str(status)).observe(
                time.perf_counter() - started
            )
