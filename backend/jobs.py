"""Enqueueing the processing job: by dotted path, with the session id only, after commit."""

from __future__ import annotations

import math
import uuid

import redis
from rq import Queue

from config import Settings

PROCESS_SESSION = "processor.process_session"


def job_timeout(settings: Settings, audio_seconds: float) -> int:
    """Seconds a job may run: a floor, plus a factor of the audio's length, so a long
    session is not killed at a fixed limit."""
    return max(settings.job_timeout_floor_s, math.ceil(audio_seconds * settings.job_timeout_factor))


def enqueue_processing(
    connection: redis.Redis, settings: Settings, session_id: uuid.UUID, audio_seconds: float
) -> str:
    """Put the session on the processing queue; the job id is the session id, so a session has
    at most one job in Redis at a time. Returns the job id."""
    queue = Queue(settings.queue_name, connection=connection)
    job = queue.enqueue(
        PROCESS_SESSION,
        str(session_id),
        job_id=str(session_id),
        job_timeout=job_timeout(settings, audio_seconds),
        result_ttl=24 * 3600,
        failure_ttl=7 * 24 * 3600,
        description=f"process session {session_id}",
    )
    return str(job.id)
