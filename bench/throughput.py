"""``python -m bench throughput``: sessions processed per hour with 1 and 2 worker processes
on this machine, queued through the real API (upload chunks, end, poll until ready).

For each worker count a fresh backend is started (``bench.stack``); the sessions are uploaded
first, then all ended back to back, and the clock runs from the first ``end`` to the last
session leaving ``processing``: the rate a backlog drains at.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.inputs import DIARIZATION, SessionInput, built_session
from bench.report import BenchError, console, load_average, table
from bench.stack import PhoneClient, Stack, add_stack_arguments, running_stack

WARMUP_CHUNK = DIARIZATION / "nemo_an4_diarize_test" / "an4_diarize_test.wav"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sessions", type=int, default=4, help="sessions per worker count")
    parser.add_argument(
        "--session-minutes", type=float, default=2.0, help="length of each session's audio"
    )
    parser.add_argument("--chunk-format", default="m4a", choices=["m4a", "ogg", "wav"])
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per worker count")
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="time the workers' very first jobs too (by default one short session per "
        "worker runs first, untimed: a worker pays its one-off first-call costs once)",
    )
    add_stack_arguments(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    session = built_session(args.session_minutes, args.chunk_format)
    runs = []
    for workers in args.workers:
        console.print(f"[bold]{workers} worker(s)[/bold]: load {load_average()}")
        with running_stack(
            api_workers=1, workers=workers, pg_admin=args.pg_admin, redis_url=args.redis_url
        ) as stack:
            runs.append(_drain(stack, session, args.sessions, args.timeout, not args.no_warmup))
    by_workers = {r["workers"]: r["sessions_per_hour"] for r in runs}
    return {
        "session_audio_s": session.duration_s,
        "chunks_per_session": len(session.chunks),
        "chunk_format": args.chunk_format,
        "sessions": args.sessions,
        "runs": runs,
        "scaling_2_vs_1": (
            round(by_workers[2] / by_workers[1], 3) if {1, 2} <= by_workers.keys() else None
        ),
    }


@dataclass
class Timing:
    session_id: str
    ended: float  # time.time() when `end` was sent
    processed: float | None = None  # when the poll first saw it leave `processing`


def _drain(
    stack: Stack, session: SessionInput, count: int, timeout: float, warm_up: bool
) -> dict[str, Any]:
    phone = PhoneClient(stack)
    try:
        group = phone.group()
        warmed = _warm_up(phone, group, stack, timeout) if warm_up else []
        ids = [_uploaded_session(phone, group, session) for _ in range(count)]
        timings = []
        for session_id in ids:
            timings.append(Timing(session_id, time.time()))
            phone.end(session_id)
        _wait_all(phone, timings, timeout)
    finally:
        phone.close()
    span = max(t.processed or 0.0 for t in timings) - timings[0].ended
    jobs = [job_times(stack, t.session_id) for t in timings]
    return {
        "workers": len(stack.workers),
        "span_s": round(span, 2),
        "sessions_per_hour": round(count * 3600 / span, 1),
        "audio_hours_per_hour": round(count * session.duration_s / span, 2),
        "mean_job_s": round(sum(j["run_s"] for j in jobs) / len(jobs), 2),
        "jobs": jobs,
        "warm_up_workers": warmed,
        "worker_peak_rss_mib": stack.worker_peak_rss_mib(),
        "load_average": load_average(),
    }


def _warm_up(phone: PhoneClient, group: str, stack: Stack, timeout: float) -> list[str | None]:
    """One short session per worker, ended together so that each idle worker takes one;
    returns which worker ran each (RQ may give two to one worker: then it says so)."""
    short = SessionInput("warm-up", (WARMUP_CHUNK,), 5.2)
    ids = [_uploaded_session(phone, group, short) for _ in stack.workers]
    timings = [Timing(session_id, time.time()) for session_id in ids]
    for session_id in ids:
        phone.end(session_id)
    _wait_all(phone, timings, timeout)
    return [job_times(stack, session_id)["worker"] for session_id in ids]


def _uploaded_session(phone: PhoneClient, group: str, session: SessionInput) -> str:
    session_id = phone.start(group)
    for number, chunk in enumerate(session.chunks):
        phone.upload(session_id, number, chunk)
    return session_id


def _wait_all(phone: PhoneClient, timings: list[Timing], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(t.processed is None for t in timings):
        if time.monotonic() > deadline:
            raise BenchError(f"sessions not processed within {timeout:.0f} s")
        for t in timings:
            if t.processed is None:
                status = phone.status(t.session_id)
                if status["status"] == "failed":
                    raise BenchError(f"session {t.session_id} failed: {status['error_message']}")
                if status["status"] != "processing":
                    t.processed = time.time()
        time.sleep(0.25)


def job_times(stack: Stack, session_id: str) -> dict[str, Any]:
    """RQ's own clock for the session's job: enqueued, started (by a worker), ended."""
    from rq.job import Job

    job = Job.fetch(session_id, connection=stack.redis)
    enqueued, started, ended = (
        _epoch(job.enqueued_at),
        _epoch(job.started_at),
        _epoch(job.ended_at),
    )
    return {
        "session_id": session_id,
        "enqueued_at": enqueued,
        "started_at": started,
        "ended_at": ended,
        "wait_s": round(started - enqueued, 4) if started and enqueued else None,
        "run_s": round(ended - started, 3) if ended and started else 0.0,
        "worker": job.worker_name,
    }


def _epoch(moment: datetime | None) -> float | None:
    """RQ stores UTC datetimes, naive in some versions: read them as UTC."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def render(result: dict[str, Any]) -> None:
    console.print(
        table(
            f"Throughput: {result['sessions']} sessions of {result['session_audio_s']:.0f} s "
            f"({result['chunks_per_session']} {result['chunk_format']} chunks) via the API",
            [
                "workers",
                "drain s",
                "sessions/h",
                "audio h/h",
                "mean job s",
                "worker peak RSS MiB",
                "load avg",
            ],
            [
                [
                    r["workers"],
                    r["span_s"],
                    r["sessions_per_hour"],
                    r["audio_hours_per_hour"],
                    r["mean_job_s"],
                    ", ".join(f"{m:.0f}" for m in r["worker_peak_rss_mib"] if m),
                    r["load_average"][0],
                ]
                for r in result["runs"]
            ],
        )
    )
    if result["scaling_2_vs_1"]:
        console.print(f"2 workers vs 1: x{result['scaling_2_vs_1']}")
