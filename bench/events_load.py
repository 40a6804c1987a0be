"""``python -m bench events``: what N open ``GET /sessions/{id}/events`` streams cost the
API while a session's progress moves.

The backend runs as in ``bench api`` (uvicorn with ``--api-workers`` processes, no worker).
One session is recorded and ended; this process then plays the worker's part through the
product's own functions (``rows.take``, then a ``ProgressReporter`` writing a new progress
every ``--step-s``), while ``--streams`` clients follow the session's events. Measured over
the window: the database transactions the API made (Postgres's count for the database, less
the ones this process made, which are counted exactly), the API processes' CPU time, and the
events delivered. Finally the session is failed (``rows.fail``), which ends every stream.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import event

import lifecycle
from bench.inputs import CHUNK_S, built_session
from bench.report import console, load_average, table
from bench.stack import PhoneClient, add_stack_arguments, running_stack
from db import create_db_engine, create_session_factory
from processing import rows
from processing.progress import ProgressReporter, Stage

# Postgres publishes a backend's transaction counts at most once a second while it is busy,
# and within 10 s once it is idle: read the counts only after that much quiet.
STATS_SETTLE_S = 11.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--streams", type=int, default=200, help="concurrent event streams")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of progress")
    parser.add_argument("--step-s", type=float, default=0.5, help="seconds between progress")
    add_stack_arguments(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    chunk = built_session(CHUNK_S / 60, "m4a").chunks[0]
    with running_stack(
        api_workers=args.api_workers, workers=0, pg_admin=args.pg_admin, redis_url=args.redis_url
    ) as stack:
        phone = PhoneClient(stack)
        try:
            session_id = phone.start(phone.group())
            phone.upload(session_id, 0, chunk)
            phone.end(session_id)
            token = phone.headers["Authorization"]
        finally:
            phone.close()
        database = stack.settings.sqlalchemy_url.rsplit("/", 1)[1]
        engine = create_db_engine(stack.settings)
        ours = [0]
        # our transactions: each commit or rollback, and each checkout's liveness ping
        for target, name in ((engine, "commit"), (engine, "rollback"), (engine.pool, "checkout")):
            event.listen(target, name, lambda *_: ours.__setitem__(0, ours[0] + 1))
        factory = create_session_factory(engine)
        # this process is the worker here, so its commits publish as a worker's do
        lifecycle.publish_status(factory, stack.redis, stack.settings.status_cache_ttl_s)
        streams = _Streams(stack.base_url, session_id, token, args.streams)
        streams.start()
        try:
            streams.wait_open(timeout_s=120)
            console.print(f"[bold]{args.streams} streams open[/bold]: load {load_average()}")
            time.sleep(STATS_SETTLE_S)
            before = _totals(args.pg_admin, database, stack.api.pid)
            ours[0], started = 0, time.monotonic()
            writes = _progress(factory, uuid.UUID(session_id), args.duration, args.step_s)
            window = time.monotonic() - started
            time.sleep(STATS_SETTLE_S)
            after = _totals(args.pg_admin, database, stack.api.pid)
        finally:
            streams.stop()
            engine.dispose()
    api_transactions = after["transactions"] - before["transactions"] - ours[0]
    return {
        "api_workers": args.api_workers,
        "streams": args.streams,
        "window_s": round(window, 2),
        "progress_writes": writes,
        "events_delivered": streams.delivered,
        "streams_ended": streams.ended,
        "api_db_transactions": api_transactions,
        "api_db_transactions_per_s": round(api_transactions / window, 2),
        "api_cpu_s": round(after["cpu_s"] - before["cpu_s"], 2),
        "api_cpu_percent": round(100 * (after["cpu_s"] - before["cpu_s"]) / window, 1),
        "load_average_after": load_average(),
    }


def _progress(factory: Any, session_id: uuid.UUID, duration_s: float, step_s: float) -> int:
    """Play the worker: take the session, move its progress through the diarizing band
    every ``step_s`` for ``duration_s``, then fail it (which ends the streams)."""
    attempt = rows.take(factory, session_id, timedelta(minutes=5), max_attempts=3)
    assert isinstance(attempt, rows.Attempt), attempt
    reporter = ProgressReporter(factory, session_id, attempt.number, min_interval_s=0)
    reporter.enter(Stage.DIARIZING)
    steps = max(1, int(duration_s / step_s))
    for step in range(1, steps + 1):
        time.sleep(step_s)
        reporter.report(step / steps)
    rows.fail(factory, attempt, Stage.DIARIZING, RuntimeError("benchmark over"))
    return steps + 1


def _totals(pg_admin: str, database: str, api_pid: int) -> dict[str, float]:
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (database,),
        ).fetchone()
    return {"transactions": float(row[0] if row else 0), "cpu_s": _cpu_seconds(api_pid)}


def _cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root`` and its children (uvicorn's worker processes)."""
    ticks, total = os.sysconf("SC_CLK_TCK"), 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, parent = int(stat.parent.name), int(fields[1])
        if root in (pid, parent):
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


class _Streams:
    """``count`` event streams of one session, held open by one asyncio loop in a thread."""

    def __init__(self, base_url: str, session_id: str, token: str, count: int) -> None:
        self._url = f"{base_url}/sessions/{session_id}/events"
        self._headers = {"Authorization": token}
        self._count = count
        self._opened = 0
        self._open = threading.Event()
        self.delivered = 0
        self.ended = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._all(),))

    def start(self) -> None:
        self._thread.start()

    def wait_open(self, timeout_s: float) -> None:
        if not self._open.wait(timeout_s):
            raise RuntimeError(f"only {self._opened} of {self._count} streams opened")

    def stop(self) -> None:
        self._thread.join(timeout=60)

    async def _all(self) -> None:
        limits = httpx.Limits(max_connections=self._count)
        async with httpx.AsyncClient(limits=limits, timeout=300) as client:
            await asyncio.gather(*(self._one(client) for _ in range(self._count)))

    async def _one(self, client: httpx.AsyncClient) -> None:
        first = True
        async with client.stream("GET", self._url, headers=self._headers) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                self.delivered += 1
                if first:
                    first, self._opened = False, self._opened + 1
                    if self._opened == self._count:
                        self._open.set()
        self.ended += 1


def render(result: dict[str, Any]) -> None:
    console.print(
        table(
            f"{result['streams']} event streams on one session, uvicorn x {result['api_workers']}",
            [
                "window s",
                "progress writes",
                "events delivered",
                "streams ended",
                "API DB transactions",
                "per s",
                "API CPU s",
                "API CPU %",
            ],
            [
                [
                    result["window_s"],
                    result["progress_writes"],
                    result["events_delivered"],
                    result["streams_ended"],
                    result["api_db_transactions"],
                    result["api_db_transactions_per_s"],
                    result["api_cpu_s"],
                    result["api_cpu_percent"],
                ]
            ],
        )
    )
