"""What every benchmark writes: the machine it ran on, one JSON file per run under
``bench/results/`` (git-ignored), and a rich table on the terminal."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"

# Wide enough for the stage tables when the output is a file or a pipe (rich assumes 80).
console = Console(width=None if sys.stdout.isatty() else 160)


class BenchError(RuntimeError):
    """A benchmark cannot run here (missing tool, service or device); the message says why."""


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare two runs: cores, memory, CPU model, load."""
    return {
        "hostname": platform.node(),
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(_meminfo_kib("MemTotal") / 1024**2, 1),
        "python": platform.python_version(),
        "load_average": load_average(),
        "git_commit": _git_commit(),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (the machine is shared: read each figure with it)."""
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _meminfo_kib(field: str) -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_result(
    command: str, argv: Sequence[str], results: dict[str, Any], out_dir: Path | None
) -> Path:
    """Write ``{"command", "argv", "finished", "machine", "results"}`` to
    ``out_dir/<command>-<UTC time>.json`` and return the path."""
    folder = out_dir or RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"{command}-{stamp}.json"
    payload = {
        "command": command,
        "argv": list(argv),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "results": results,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A rich table; floats are shown with 3 significant digits, None as a dash."""
    out = Table(title=title, title_justify="left")
    for i, name in enumerate(columns):
        out.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*(fmt(cell) for cell in row))
    return out


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.3g}"
    return str(value)


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds`` (wall clock, perf_counter)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._started


def proc_status_mib(pid: int | str, field: str) -> float | None:
    """A memory field of ``/proc/<pid>/status`` in MiB: ``VmRSS`` (now) or ``VmHWM`` (peak
    resident set since start, or since the last reset). None where /proc cannot tell."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def proc_cpu_seconds(pid: int | str) -> float | None:
    """CPU seconds (user + system, all threads) of process ``pid`` and of its children that
    it has waited for (e.g. ffmpeg decodes), from ``/proc/<pid>/stat``; None where /proc
    cannot tell (the process is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # fields after the command name, which is in parentheses and may hold spaces:
    # field 3 (state) is index 0, so utime, stime, cutime, cstime (14-17) are 11-14
    fields = stat.rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])
    return round(ticks / os.sysconf("SC_CLK_TCK"), 2)
