"""``python -m bench api``: requests/s and p50/p99 latency of the two calls phones make
most, against uvicorn with as many worker processes as the machine has cores:

* ``GET /sessions/{id}/status``, the progress poll (goal on 2 cores: >= 1000 req/s, p99
  under 50 ms);
* ``POST /sessions/{id}/upload`` of a 30 s chunk (goal: >= 50 uploads/s);
* for reference, ``GET /health/live`` (no token, no database): what the server and the
  load generator can do at all on this machine, the ceiling the other two are under.

The load generator (wrk, or ``bench.loadgen``'s own) runs in processes of its own on the
same machine, so on a small machine it competes with the server for the cores: the figures
are a floor for the server alone.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from bench import loadgen
from bench.inputs import CHUNK_S, built_session
from bench.report import console, load_average, table
from bench.stack import CONTENT_TYPES, PhoneClient, add_stack_arguments, running_stack

GOALS: dict[str, dict[str, float]] = {
    "status": {"requests_per_s": 1000, "p99_ms": 50},
    "upload": {"requests_per_s": 50},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-workers", type=int, default=os.cpu_count() or 1, help="uvicorn worker processes"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per test")
    parser.add_argument("--status-connections", type=int, default=32)
    parser.add_argument("--upload-connections", type=int, default=8)
    parser.add_argument(
        "--max-requests", type=int, default=100_000, help="cap per test (our generator)"
    )
    parser.add_argument(
        "--generator", choices=["auto", "wrk", "python"], default="auto", help="auto: wrk if found"
    )
    parser.add_argument("--client-processes", type=int, default=2, help="wrk threads / processes")
    parser.add_argument("--chunk-format", default="m4a", choices=["m4a", "ogg", "wav"])
    parser.add_argument(
        "--skip", nargs="+", choices=["live", "status", "upload"], help="tests to leave out"
    )
    add_stack_arguments(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    chunk = built_session(CHUNK_S / 60, args.chunk_format).chunks[0]
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and loadgen.wrk_available())
    tests: dict[str, Any] = {}
    with running_stack(
        api_workers=args.api_workers, workers=0, pg_admin=args.pg_admin, redis_url=args.redis_url
    ) as stack:
        phone = PhoneClient(stack)
        try:
            group = phone.group()
            token = phone.headers["Authorization"].removeprefix("Bearer ")
            for kind, connections in (
                ("live", args.status_connections),
                ("status", args.status_connections),
                ("upload", args.upload_connections),
            ):
                if kind in (args.skip or []):
                    continue
                # one recording session per connection, as many phones would have
                sessions = tuple(phone.start(group) for _ in range(connections))
                load = loadgen.Load(
                    base_url=stack.base_url,
                    token=token,
                    kind=kind,
                    session_ids=sessions,
                    connections=connections,
                    duration_s=args.duration,
                    max_requests=args.max_requests,
                    audio=chunk,
                    content_type=CONTENT_TYPES[chunk.suffix],
                )
                console.print(f"[bold]{kind}[/bold]: load {load_average()}")
                measured = (
                    loadgen.run_wrk(load, args.client_processes)
                    if use_wrk
                    else loadgen.run_python(load, args.client_processes)
                )
                tests[kind] = {
                    **measured,
                    "connections": connections,
                    "goal": GOALS.get(kind),
                    "meets_goal": _meets(measured, GOALS[kind]) if kind in GOALS else None,
                    "load_average_after": load_average(),
                }
        finally:
            phone.close()
    return {
        "api_workers": args.api_workers,
        "chunk_bytes": chunk.stat().st_size,
        "chunk_format": args.chunk_format,
        "tests": tests,
    }


def _meets(measured: dict[str, Any], goal: dict[str, float]) -> bool:
    rate_ok = (measured["requests_per_s"] or 0) >= goal["requests_per_s"]
    p99 = measured["p99_ms"]
    latency_ok = "p99_ms" not in goal or (p99 is not None and p99 < goal["p99_ms"])
    return rate_ok and latency_ok and measured["errors"] == 0


def render(result: dict[str, Any]) -> None:
    console.print(
        table(
            f"API under load: uvicorn x {result['api_workers']} workers, "
            f"{result['chunk_bytes'] / 1024:.0f} KiB {result['chunk_format']} chunks",
            [
                "request",
                "generator",
                "conns",
                "requests",
                "errors",
                "req/s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "goal",
                "met",
            ],
            [
                [
                    kind,
                    t["generator"],
                    t["connections"],
                    t["requests"],
                    t["errors"],
                    t["requests_per_s"],
                    t["p50_ms"],
                    t["p90_ms"],
                    t["p99_ms"],
                    ", ".join(f"{k} {v}" for k, v in (t["goal"] or {}).items()) or "(ceiling)",
                    t["meets_goal"],
                ]
                for kind, t in result["tests"].items()
            ],
        )
    )
