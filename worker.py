"""``python worker.py`` (or ``lahstats worker``): an RQ worker on the processing queue that loads
every model once, then processes sessions without reloading.

Why :class:`rq.SimpleWorker` and not RQ's default forking ``Worker``: the default forks a
"work horse" child per job. A model loaded in the parent would be reloaded in every child (for
Whisper large and pyannote, tens of seconds and GBs each time), and CUDA cannot be used in a
forked child once the parent has initialised it. ``SpawnWorker`` avoids the CUDA problem but
still loads the models anew in each spawned process. So jobs run in this process, on the models
loaded at start. The cost: a job that crashes the interpreter (OOM kill, segfault) takes the
worker with it — which is why sessions carry a lease in Postgres and the reconciler re-enqueues
a session whose worker vanished. SIGTERM is a warm shutdown: RQ lets the current job finish.
RQ's stop-job command stops the current job at its next progress report (``kill_horse``).
The worker also serves live sessions' chunk queue (each chunk heard as it is uploaded; a
session's finish goes first) and the webhook queue, whose short jobs run between sessions.
Several workers may share one queue: RQ hands each job to one worker, the job id is the session
id, and ``processing.rows.take`` refuses a session another worker holds a live lease on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import signal
import sys
import time
import uuid
from datetime import UTC, datetime

import redis
import structlog
from prometheus_client import start_http_server
from rq import Queue, SimpleWorker
from rq.executions import Execution
from rq.job import Job
from rq.scheduler import RQScheduler

import processor
from config import Settings
from db import create_db_engine, create_session_factory
from observability import JOB_CPU_SECONDS, configure_logging
from processing.reconcile import reconcile
from processing.retention import RETENTION_EVERY_S, apply_retention
from processing.sweep import SWEEP_EVERY_S, SWEEP_WINDOW, sweep_orphan_chunks
from queueing.jobs import chunk_queue
from queueing.webhooks import webhook_queue
from services.device import resolve_device
from storage import create_storage

log = structlog.get_logger(__name__)
WORKER_INFO_KEY = "lahstats:worker:{}"
SWEEP_KEY = "lahstats:storage-sweep"
RETENTION_KEY = "lahstats:retention"


class LahStatsWorker(SimpleWorker):
    """Runs each job in the worker's own process, on the models it loaded once; between jobs
    it runs the reconciler with RQ's own registry maintenance and re-announces its models."""

    pipeline: processor.Pipeline | None = None

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        """The job, its CPU seconds counted (``lahstats_job_cpu_seconds``), then the memory it
        freed handed back (:func:`release_freed_memory`)."""
        cpu = time.process_time()
        try:
            return super().perform_job(job, queue, execution)
        finally:
            JOB_CPU_SECONDS.labels(job=_job_name(job)).inc(time.process_time() - cpu)
            release_freed_memory()

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        self._release_due_retries()
        if self.pipeline is None:
            return
        self.announce()
        try:
            reconcile(self.pipeline.session_factory, self.connection, self.pipeline.settings)
        except Exception:  # the reconciler must never take the worker down
            log.exception("worker.reconcile_failed")
        self._sweep_storage()
        self._apply_retention()

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """RQ's stop-job command (``DELETE /sessions/{id}`` sends it for a session being
        processed) kills a forking worker's child. This worker has none: RQ's command thread
        names the job in ``_stopped_job_id``, and the job stops itself at its next progress
        report; RQ then marks it stopped (never retried) and the worker takes the next job."""
        if self.pipeline is None or not self._stopped_job_id:
            return
        try:
            session_id = uuid.UUID(self._stopped_job_id)
        except ValueError:  # a webhook delivery: short, it runs to its end
            return
        self.pipeline.stops.request(session_id)

    def _sweep_storage(self) -> None:
        """Delete stray chunk objects of recently ended sessions: hourly, one worker at a
        time (whoever takes the Redis key first)."""
        assert self.pipeline is not None
        if not self.connection.set(SWEEP_KEY, self.name, nx=True, ex=SWEEP_EVERY_S):
            return
        since = datetime.now(UTC) - SWEEP_WINDOW
        try:
            sweep_orphan_chunks(self.pipeline.session_factory, self.pipeline.storage, since)
        except Exception:  # nor must the sweeper
            log.exception("worker.sweep_failed")

    def _apply_retention(self) -> None:
        """Delete raw audio and clips past their retention: hourly, one worker at a time."""
        assert self.pipeline is not None
        if not self.connection.set(RETENTION_KEY, self.name, nx=True, ex=RETENTION_EVERY_S):
            return
        pipeline = self.pipeline
        try:
            apply_retention(
                pipeline.session_factory, pipeline.storage, pipeline.settings, datetime.now(UTC)
            )
        except Exception:  # nor must retention
            log.exception("worker.retention_failed")

    def _release_due_retries(self) -> None:
        """Move webhook retries whose backoff is over back onto their queue. Done here, in
        process, rather than by RQ's scheduler, which forks a child that holds a copy of the
        loaded models and outlives a SIGKILLed worker."""
        scheduler = RQScheduler(self.queues, connection=self.connection)
        if scheduler.acquire_locks():
            try:
                scheduler.enqueue_scheduled_jobs()
            finally:
                scheduler.release_locks()

    def announce(self) -> None:
        """Publish which models this worker loaded and on which device (``lahstats status``)."""
        if self.pipeline is None:
            return
        self.connection.set(
            WORKER_INFO_KEY.format(self.name),
            json.dumps(worker_info(self.pipeline.settings)),
            ex=max(120, 3 * self.pipeline.settings.reconcile_interval_s),
        )


def _job_name(job: Job) -> str:
    """The job's function (a bounded set: ours are enqueued by dotted path), or ``unreadable``."""
    try:
        return job.func_name or "unreadable"
    except Exception:  # its payload cannot be read: RQ fails it; its CPU still counts
        return "unreadable"


_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform == "linux" else None


def release_freed_memory() -> None:
    """Give the pages the last job freed back to the OS (glibc's ``malloc_trim``; a no-op
    elsewhere). glibc keeps freed memory inside its heaps, between blocks still in use, for
    the next allocation; with the allocation sizes of one job not quite the next one's, a chunk
    job left ~1-3 MB more each time, so the worker's resident set grew with the session's
    length (in one process, 20 chunk jobs: 996 -> 1013 MiB between jobs, with a trim after
    each 875 -> 903 and flat after; the trim takes a few ms)."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


def worker_info(settings: Settings) -> dict[str, str]:
    return {
        "device": resolve_device(settings.device),
        "diarization": f"{settings.diarization_backend}:"
        + (settings.diarization_model if settings.diarization_backend == "pyannote" else "offline"),
        "asr": f"{settings.asr_backend}:{settings.asr_model or 'bundled:base'}",
        "emotion": f"{settings.emotion_backend}:{settings.emotion_model or 'default'}",
        "queue": settings.queue_name,
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def build_worker(settings: Settings, connection: redis.Redis) -> LahStatsWorker:
    """Load the pipeline (all models), install it for ``processor.process_session``, and
    return a worker listening on the processing queue."""
    engine = create_db_engine(settings)
    pipeline = processor.Pipeline(
        settings=settings,
        session_factory=create_session_factory(engine),
        storage=create_storage(settings),
        engines=processor.load_engines(settings),
        connection=connection,
    )
    processor.install(pipeline)
    # finishes first (someone waits for them), then live sessions' chunks, then webhooks
    queues = [
        Queue(settings.queue_name, connection=connection),
        chunk_queue(connection, settings),
        webhook_queue(connection, settings),
    ]
    # worker_ttl bounds how long an idle worker blocks on the queue, hence how often it
    # reaches the maintenance step that reconciles.
    worker = LahStatsWorker(
        queues,
        connection=connection,
        maintenance_interval=settings.reconcile_interval_s,
        worker_ttl=max(30, settings.reconcile_interval_s + 15),
    )
    worker.pipeline = pipeline
    worker.announce()
    return worker


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    configure_logging(settings)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    connection = redis.Redis.from_url(settings.redis_url)
    worker = build_worker(settings, connection)
    log.info("worker.ready", worker=worker.name, queue=settings.queue_name)
    worker.work(burst=burst, logging_level=settings.log_level)


if __name__ == "__main__":
    run_worker(Settings())
