"""Logs and metrics, set up once at each edge (API, worker, CLI).

Logs: structlog; one JSON object per line when ``LOG_JSON`` is set (for shippers), readable
lines otherwise. Standard-library loggers (uvicorn, rq, sqlalchemy) go through the same
renderer, so every line has the same shape. Pipeline lines carry ``session_id`` and ``stage``.

Metrics: Prometheus. The API serves ``/metrics`` (request latency and counts by route and
status, queue depth, sessions by status, stuck sessions); each worker serves its own
(jobs started/finished/failed, stage durations, real-time factor) on ``METRICS_PORT``.
"""

from __future__ import annotations

import logging
import sys

import structlog
from prometheus_client import Counter, Gauge, Histogram

from config import Settings

_SHARED_PROCESSORS: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
    structlog.processors.format_exc_info,
]


def configure_logging(settings: Settings) -> None:
    """Route structlog and the standard library through one renderer on stderr."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*_SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED_PROCESSORS,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


# --- worker metrics -------------------------------------------------------------------------
JOBS_STARTED = Counter("lahstats_jobs_started_total", "Processing attempts started")
JOBS_FINISHED = Counter("lahstats_jobs_finished_total", "Sessions processed successfully")
JOBS_FAILED = Counter(
    "lahstats_jobs_failed_total", "Processing attempts that failed", ["kind"]
)  # kind: permanent | transient | deleted (its session was deleted under it)
STAGE_SECONDS = Histogram(
    "lahstats_stage_seconds",
    "Wall time of each pipeline stage",
    ["stage"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
# CPU seconds of the worker's whole process (every thread: CTranslate2's and torch's too) while
# it ran a job, by the job's function; the share no job takes is the worker's own (polling,
# the reconciler). What capacity planning and ``python -m bench live`` read.
JOB_CPU_SECONDS = Counter("lahstats_job_cpu_seconds", "Worker CPU seconds spent in jobs", ["job"])
STAGE_CPU_SECONDS = Counter(
    "lahstats_stage_cpu_seconds",
    "Worker CPU seconds in each stage of sessions processed successfully",
    ["stage"],
)
REAL_TIME_FACTOR = Histogram(
    "lahstats_real_time_factor",
    "Processing seconds per second of audio, per session",
    buckets=(0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2),
)

# --- API metrics ----------------------------------------------------------------------------
REQUEST_SECONDS = Histogram(
    "lahstats_http_request_seconds",
    "API request latency by route template, method and status",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUEUE_DEPTH = Gauge("lahstats_queue_depth", "Jobs waiting in the processing queue")
SESSIONS_BY_STATUS = Gauge("lahstats_sessions", "Sessions by status", ["status"])
SESSIONS_STUCK = Gauge(
    "lahstats_sessions_stuck",
    "Sessions processing with an expired lease (their worker is gone; the reconciler will act)",
)
