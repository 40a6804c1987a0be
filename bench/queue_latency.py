"""``python -m bench queue-latency``: how long a session waits between the phone's ``end``
and a free worker starting on it (goal: under 1 s).

One worker, idle between sessions: each session is uploaded, ended, and processed to the
end before the next, so every measurement is of a worker that is waiting for work. Two
clocks: RQ's ``started_at`` (the worker took the job) and the first status poll that shows
the session past ``queued`` (the job has taken the session row, after the lease).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from bench.report import BenchError, console, load_average, table
from bench.stack import PhoneClient, add_stack_arguments, running_stack
from bench.throughput import WARMUP_CHUNK, job_times

GOAL_S = 1.0
DEFAULT_CHUNK = WARMUP_CHUNK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--chunk", type=Path, default=DEFAULT_CHUNK, help="each session's audio")
    parser.add_argument("--poll-ms", type=float, default=10.0, help="status poll interval")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per session")
    add_stack_arguments(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with running_stack(
        api_workers=1, workers=1, pg_admin=args.pg_admin, redis_url=args.redis_url
    ) as stack:
        phone = PhoneClient(stack)
        try:
            group = phone.group()
            samples = [_one(phone, group, args) for _ in range(args.sessions)]
            for sample in samples:
                sample.update(job_times(stack, sample["session_id"]))
        finally:
            phone.close()
    for sample in samples:
        sample["end_to_started_s"] = round(sample["started_at"] - sample["end_sent"], 4)
    return {
        "goal_s": GOAL_S,
        "chunk": str(args.chunk),
        "samples": samples,
        "end_to_started_s": _summary([s["end_to_started_s"] for s in samples]),
        "enqueue_to_started_s": _summary([s["wait_s"] for s in samples]),
        "end_to_stage_change_s": _summary([s["end_to_stage_change_s"] for s in samples]),
        "end_request_s": _summary([s["end_request_s"] for s in samples]),
        "load_average": load_average(),
    }


def _one(phone: PhoneClient, group: str, args: argparse.Namespace) -> dict[str, Any]:
    session_id = phone.start(group)
    phone.upload(session_id, 0, args.chunk)
    sent = time.time()
    phone.end(session_id)
    returned = time.time()
    changed = _first_stage_change(phone, session_id, args.poll_ms / 1000, args.timeout)
    phone.wait_until_processed(session_id, args.timeout)
    return {
        "session_id": session_id,
        "end_sent": sent,
        "end_request_s": round(returned - sent, 4),
        "end_to_stage_change_s": round(changed - sent, 4),
    }


def _first_stage_change(
    phone: PhoneClient, session_id: str, poll_s: float, timeout: float
) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = phone.status(session_id)
        if status["status"] != "processing" or status["stage"] != "queued":
            return time.time()
        time.sleep(poll_s)
    raise BenchError(f"session {session_id} still queued after {timeout:.0f} s")


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 4),
        "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 4),
        "max": round(ordered[-1], 4),
        "mean": round(statistics.fmean(ordered), 4),
    }


def render(result: dict[str, Any]) -> None:
    rows = [
        ("end sent → worker started job (RQ started_at)", result["end_to_started_s"]),
        ("enqueued → worker started job (RQ clocks)", result["enqueue_to_started_s"]),
        ("end sent → status past 'queued' (polled)", result["end_to_stage_change_s"]),
        ("the end request itself", result["end_request_s"]),
    ]
    console.print(
        table(
            f"Queue latency, {len(result['samples'])} sessions, idle worker "
            f"(goal < {result['goal_s']:g} s)",
            ["measure", "p50 s", "p95 s", "max s", "mean s"],
            [[name, s["p50"], s["p95"], s["max"], s["mean"]] for name, s in rows],
        )
    )
