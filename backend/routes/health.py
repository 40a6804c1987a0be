"""Liveness and readiness."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response, status
from sqlalchemy import text

from backend.deps import ResourcesDep
from backend.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/health", responses={503: {"model": HealthPublic, "description": "Not ready"}})
def health(resources: ResourcesDep, response: Response) -> HealthPublic:
    """Ready when the database and Redis answer (storage is reported, not required)."""
    database = _probe(lambda: _ping_database(resources))
    redis = _probe(lambda: resources.redis.ping())
    storage = _probe(resources.storage.check)
    ready = database == "ok" and redis == "ok"
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return HealthPublic(
        status="healthy" if ready else "unhealthy",
        database=database,
        redis=redis,
        storage=storage,
        timestamp=datetime.now(UTC),
    )


@router.get("/health/live", include_in_schema=False)
def live() -> dict[str, str]:
    """The process is up (no dependency checked): for a container's liveness probe."""
    return {"status": "alive"}


def _ping_database(resources: ResourcesDep) -> None:
    with resources.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _probe(check) -> str:
    try:
        check()
    except Exception as exc:  # any failure means "not ok"; the message says which
        return f"error: {type(exc).__name__}"
    return "ok"
