"""Prometheus metrics of the API, plus gauges read from Postgres and Redis at scrape time.

They reveal how many sessions there are, so production serves them only to a scraper that
presents ``METRICS_TOKEN`` (and answers 404, as for any unknown path, without one set);
development and test serve them openly unless a token is set."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

from backend.deps import DbDep, ResourcesDep
from backend.errors import NotFound, Unauthorized
from config import Settings
from models import Session, SessionStatus
from observability import QUEUE_DEPTH, SESSIONS_BY_STATUS, SESSIONS_STUCK
from queueing.jobs import processing_queue

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, resources: ResourcesDep, db: DbDep) -> Response:
    """Prometheus text format. Scrape each API replica; workers serve their own."""
    _require_scraper(request, resources.settings)
    QUEUE_DEPTH.set(processing_queue(resources.redis, resources.settings).count)
    counts = dict(db.execute(select(Session.status, func.count()).group_by(Session.status)).all())
    for status in SessionStatus:
        SESSIONS_BY_STATUS.labels(status=status.value).set(counts.get(status, 0))
    stuck = db.scalar(
        select(func.count()).where(
            Session.status == SessionStatus.PROCESSING,
            Session.lease_expires_at < datetime.now(UTC),
        )
    )
    SESSIONS_STUCK.set(stuck or 0)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _require_scraper(request: Request, settings: Settings) -> None:
    token = settings.metrics_token
    if token is None:
        if settings.environment == "production":
            raise NotFound("Not Found", code="not_found")
        return
    presented = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
    if not hmac.compare_digest(presented, token.get_secret_value().encode()):
        raise Unauthorized("metrics need the scraper's bearer token", code="missing_token")
