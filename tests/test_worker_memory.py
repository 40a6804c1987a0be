"""The worker hands the memory a job freed back to the OS after every job (glibc keeps it
otherwise, and a live session's 120 chunk jobs made the worker grow with the session)."""

from __future__ import annotations

import pytest
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
