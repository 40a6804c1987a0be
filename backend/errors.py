"""One error base class that carries its HTTP status; one handler renders every error as
``{"error": {"code", "message"}}``."""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    """A member of the group, but not allowed this (only the starter or an admin may)."""

    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMedia(AppError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidRequest(AppError):
    """The request cannot be accepted as written (the one rule: 422, never 400)."""

    status_code = 422
    code = "validation_error"


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def _render(status: int, code: str, message: str, headers: Mapping[str, str] | None = None):
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(_: Request, exc: AppError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return _render(exc.status_code, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        return _render(422, "validation_error", message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # the framework's "error parsing the body" (bytes that are not JSON or multipart):
            # a malformed request, answered like every other one
            return _render(422, "validation_error", f"body: {exc.detail}")
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return _render(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def database_error(_: Request, exc: Exception) -> JSONResponse:
        log.warning("api.database_unavailable", error=str(exc))
        return _render(503, "database_unavailable", "The database is unavailable; retry later.")

    @app.exception_handler(RedisError)
    async def redis_error(_: Request, exc: RedisError) -> JSONResponse:
        log.warning("api.queue_unavailable", error=str(exc))
        return _render(503, "queue_unavailable", "The job queue is unavailable; retry later.")

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("api.unhandled_error", exc_info=exc)
        return _render(500, "internal_error", "Something went wrong on our side.")
