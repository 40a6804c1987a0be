"""The worker hands the memory a job freed back to the OS after every job (glibc keeps it
otherwise, and a live session's 120 chunk jobs made the worker grow with the session), and
counts each job's CPU seconds by the job's function (``lahstats_job_cpu_seconds``)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from rq import Queue

import worker
from tests.factories import burst_worker


def test_freed_memory_is_handed_back_after_every_job_failed_or_not(
    settings, redis_conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    released: list[str] = []
    queue = Queue(settings.queue_name, connection=redis_conn)
    done = queue.enqueue("math.sqrt", 4.0)
    failed = queue.enqueue("math.sqrt", -1.0)  # ValueError: math domain error
    monkeypatch.setattr(worker, "release_freed_memory", lambda: released.append("trim"))
    with burst_worker(settings, redis_conn, webhooks=False) as w:
        w.work(burst=True)
    assert done.return_value() == 2.0
    assert failed.is_failed
    assert released == ["trim", "trim"]


def _job_cpu(job: str) -> float:
    return REGISTRY.get_sample_value("lahstats_job_cpu_seconds_total", {"job": job}) or 0.0


def test_each_job_s_cpu_seconds_are_counted_by_its_function(settings, redis_conn) -> None:
    queue = Queue(settings.queue_name, connection=redis_conn)
    busy = queue.enqueue("math.factorial", 100_000)  # ~0.1 s of one core, held by this thread
    idle = queue.enqueue("time.sleep", 0.3)  # wall time, no CPU
    before = {name: _job_cpu(name) for name in ("math.factorial", "time.sleep")}
    with burst_worker(settings, redis_conn, webhooks=False) as w:
        w.work(burst=True)
    assert busy.is_finished and idle.is_finished
    assert _job_cpu("math.factorial") - before["math.factorial"] > 0.05
    assert _job_cpu("time.sleep") - before["time.sleep"] < 0.05
