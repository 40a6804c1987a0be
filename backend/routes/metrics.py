"""Prometheus metrics of the API, plus gauges read from Postgres and Redis at scrape time."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

from backend.deps import DbDep, ResourcesDep
from jobs import processing_queue
from models import Session, SessionStatus
from observability import QUEUE_DEPTH, SESSIONS_BY_STATUS, SESSIONS_STUCK

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def metrics(resources: ResourcesDep, db: DbDep) -> Response:
    """Prometheus text format. Scrape each API replica; workers serve their own."""
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
