"""The bench command line: one subcommand per benchmark, each a module with
``add_arguments(parser)``, ``run(args) -> dict`` and ``render(result)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.report import BenchError, console, write_result

# subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "pipeline": ("bench.pipeline_speed", "per-stage time, RTF, load time, peak RSS vs baseline"),
    "throughput": ("bench.throughput", "sessions per hour with 1 and 2 workers, via the API"),
    "live": ("bench.live", "live sessions: end→ready, worker peak RSS and CPU, reprocess"),
    "queue-latency": ("bench.queue_latency", "time from `end` to a worker starting the job"),
    "api": ("bench.api_load", "req/s and p50/p99 of status polls and 30 s chunk uploads"),
    "events": ("bench.events_load", "what N open /events streams cost the API (DB, CPU)"),
    "pyannote": ("bench.pyannote_speed", "DIARIZATION_BACKEND=pyannote on the CPU, random weights"),
    "quality": ("bench.quality", "DER/JER, WER, emotion accuracy, Singlish word counts"),
    "voiceprints": ("bench.voiceprints", "claim suggestions: precision and coverage, tuned apart"),
    "markdown": ("bench.markdown", "BENCHMARKS.md tables from result JSON files"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="LahStats benchmarks and quality evaluation."
    )
    parser.add_argument(
        "--out", type=Path, help="folder for the JSON results (default: bench/results)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one benchmark; 0 on success, 2 when it cannot run here (the message says why)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        result = module.run(args)
    except BenchError as exc:
        console.print(f"[red]bench {args.command}: {exc}[/red]")
        return 2
    module.render(result)
    if getattr(module, "WRITES_RESULT", True):
        path = write_result(args.command, argv, result, args.out)
        console.print(f"wrote {path}")
    return 0
