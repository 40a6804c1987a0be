"""The processing queue: enqueue a session by dotted path with its id only (after the commit
that made it ``processing``), and tell whether a session still has a live job.

Shared by the API (``end``) and the reconciler; Postgres stays the source of truth, Redis only
carries the work.
"""

from __future__ import annotations

import math
import uuid

import redis
import structlog
from rq import Queue, Retry, Worker
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry

from config import Settings

log = structlog.get_logger(__name__)
PROCESS_SESSION = "processor.process_session"
HEAR_CHUNK = "processor.hear_chunk"
# Statuses in which a job will still run (or is running) without anyone's help.
LIVE_STATUSES = {
    JobStatus.QUEUED,
    JobStatus.STARTED,
    JobStatus.SCHEDULED,
    JobStatus.DEFERRED,
    JobStatus.CREATED,
}
# Statuses in which a job has not begun: cancelling it keeps it from ever running.
WAITING_STATUSES = LIVE_STATUSES - {JobStatus.STARTED}


def job_timeout(settings: Settings, audio_seconds: float) -> int:
    """Seconds a job may run: a floor, plus a factor of the audio's length, so a long
    session is not killed at a fixed limit."""
    return max(settings.job_timeout_floor_s, math.ceil(audio_seconds * settings.job_timeout_factor))


def processing_queue(connection: redis.Redis, settings: Settings) -> Queue:
    return Queue(settings.queue_name, connection=connection)


def enqueue_processing(
    connection: redis.Redis, settings: Settings, session_id: uuid.UUID, audio_seconds: float
) -> str:
    """Put the session on the processing queue; the job id is the session id, so a session has
    at most one job in Redis at a time. No RQ retries: a job that failed transiently leaves its
    session ``processing`` and the reconciler enqueues it again. Returns the job id."""
    job = processing_queue(connection, settings).enqueue(
        PROCESS_SESSION,
        str(session_id),
        job_id=str(session_id),
        job_timeout=job_timeout(settings, audio_seconds),
        result_ttl=24 * 3600,
        failure_ttl=7 * 24 * 3600,
        description=f"process session {session_id}",
    )
    return str(job.id)


def chunk_queue(connection: redis.Redis, settings: Settings) -> Queue:
    """The live sessions' chunk jobs (``QUEUE_NAME-chunks``)."""
    return Queue(f"{settings.queue_name}-chunks", connection=connection)


def hearing_job_id(session_id: uuid.UUID, chunk_number: int) -> str:
    return f"hear-{session_id}-{chunk_number}"


# A chunk job that failed (storage or the database briefly down) is tried again this many times
# at once; after that the reconciler, or the finish, hears the chunk.
HEARING_RETRIES = 2


def enqueue_hearing(
    connection: redis.Redis, settings: Settings, session_id: uuid.UUID, chunk_number: int
) -> bool:
    """Put the chunk's hearing on the chunk queue (after the commit that stored the chunk),
    unless a job for it is already waiting; returns whether one was enqueued. A duplicate
    delivery is harmless: the job does nothing when the chunk's hearing is stored and valid."""
    job_id = hearing_job_id(session_id, chunk_number)
    try:
        if Job.fetch(job_id, connection=connection).get_status() in WAITING_STATUSES:
            return False
    except NoSuchJobError:
        pass
    chunk_queue(connection, settings).enqueue(
        HEAR_CHUNK,
        str(session_id),
        chunk_number,
        job_id=job_id,
        job_timeout=job_timeout(settings, settings.expected_chunk_seconds),
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        retry=Retry(max=HEARING_RETRIES),
        description=f"hear chunk {chunk_number} of session {session_id}",
    )
    return True


def hearing_alive(connection: redis.Redis, session_id: uuid.UUID, chunk_number: int) -> bool:
    """Whether a job for the chunk's hearing is waiting, or running on a worker that is still
    there (a SIGKILLed worker's registration expires with its ``worker_ttl``; its job would
    otherwise look started until RQ's own clean-up, a job timeout later)."""
    try:
        job = Job.fetch(hearing_job_id(session_id, chunk_number), connection=connection)
    except NoSuchJobError:
        return False
    status = job.get_status()
    if status is JobStatus.STARTED:
        name = job.worker_name
        return bool(name) and bool(
            connection.exists(f"{Worker.redis_worker_namespace_prefix}{name}")
        )
    return status in LIVE_STATUSES


def job_status(connection: redis.Redis, session_id: uuid.UUID) -> JobStatus | None:
    """The session's job status in Redis, or None when Redis has no job for it."""
    try:
        return Job.fetch(str(session_id), connection=connection).get_status()
    except NoSuchJobError:
        return None


def requeue_processing(
    connection: redis.Redis, settings: Settings, session_id: uuid.UUID, audio_seconds: float
) -> str:
    """Enqueue again a session whose job was lost (worker killed, Redis flushed): first drop
    the dead job's traces from RQ's registries so its clean-up cannot touch the new job."""
    queue = processing_queue(connection, settings)
    job_id = str(session_id)
    FailedJobRegistry(queue=queue).remove(job_id)
    started = StartedJobRegistry(queue=queue)
    # RQ 3 keys started entries by "<job id>:<execution id>"
    members: list[bytes] = connection.zrange(started.key, 0, -1)  # type: ignore[assignment]
    stale = [m for m in members if m.decode().startswith(f"{job_id}:")]
    if stale:
        connection.zrem(started.key, *stale)
    return enqueue_processing(connection, settings, session_id, audio_seconds)


def cancel_processing(connection: redis.Redis, session_id: uuid.UUID) -> JobStatus | None:
    """Stop the session's job, after the commit that deleted the session: a job still waiting
    is cancelled (it never runs); a running one is sent RQ's stop-job command (the worker stops
    it at its next progress report). Returns the status the job was found in, None when Redis
    has no job for it. Best effort: a job that slips through finds the session gone and
    writes nothing."""
    try:
        job = Job.fetch(str(session_id), connection=connection)
        status = job.get_status()
        if status in WAITING_STATUSES:
            job.cancel()
        elif status is JobStatus.STARTED:
            send_stop_job_command(connection, job.id)
    except NoSuchJobError:
        return None
    except InvalidJobOperation as exc:  # it finished or was cancelled between the two calls
        log.info("jobs.cancel_skipped", session_id=str(session_id), reason=str(exc))
    return status
