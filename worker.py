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
Several workers may share one queue: RQ hands each job to one worker, the job id is the session
id, and ``processing.rows.take`` refuses a session another worker holds a live lease on.
"""

from __future__ import annotations

import logging

import redis
from rq import Queue, SimpleWorker

import processor
from config import Settings
from db import create_db_engine, create_session_factory
from processing.reconcile import reconcile
from storage import create_storage

log = logging.getLogger(__name__)


class LahStatsWorker(SimpleWorker):
    """Runs each job in the worker's own process, on the models it loaded once, and runs the
    reconciler with RQ's own registry maintenance between jobs."""

    pipeline: processor.Pipeline | None = None

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        if self.pipeline is None:
            return
        try:
            reconcile(self.pipeline.session_factory, self.connection, self.pipeline.settings)
        except Exception:  # the reconciler must never take the worker down
            log.exception("reconciler run failed")


def build_worker(settings: Settings, connection: redis.Redis) -> LahStatsWorker:
    """Load the pipeline (all models), install it for ``processor.process_session``, and
    return a worker listening on the processing queue."""
    engine = create_db_engine(settings)
    pipeline = processor.Pipeline(
        settings=settings,
        session_factory=create_session_factory(engine),
        storage=create_storage(settings),
        models=processor.load_models(settings),
    )
    processor.install(pipeline)
    queue = Queue(settings.queue_name, connection=connection)
    # worker_ttl bounds how long an idle worker blocks on the queue, hence how often it
    # reaches the maintenance step that reconciles.
    worker = LahStatsWorker(
        [queue],
        connection=connection,
        maintenance_interval=settings.reconcile_interval_s,
        worker_ttl=max(30, settings.reconcile_interval_s + 15),
    )
    worker.pipeline = pipeline
    return worker


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    connection = redis.Redis.from_url(settings.redis_url)
    worker = build_worker(settings, connection)
    log.info("worker %s ready on queue %r", worker.name, settings.queue_name)
    worker.work(burst=burst, logging_level=settings.log_level)


if __name__ == "__main__":
    run_worker(Settings())
