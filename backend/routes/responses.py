"""OpenAPI documentation of the error responses a route can give."""

from __future__ import annotations

from typing import Any

from backend.schemas import ErrorResponse

_DESCRIPTIONS = {
    401: "Missing, expired or invalid bearer token",
    403: "A member, but not allowed to do this (the starter or a group admin may)",
    404: "Not found, or not in one of your groups",
    409: "Conflicts with the current state",
    413: "Upload larger than the limit",
    415: "Upload is not audio",
    422: "Invalid request body or parameters",
    503: "A backing service (database, queue) is unavailable",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorResponse, "description": _DESCRIPTIONS[c]} for c in codes}
