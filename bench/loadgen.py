"""HTTP load generators for ``bench api``, both in processes of their own so the server's
CPU time is not the client's: wrk (Debian's ``wrk``) when it is installed, else a small
multi-process asyncio + httpx generator. Loopback only; every run is bounded by a request
count (ours) or a duration (both).

A request is a status poll (``GET /sessions/{id}/status``), a chunk upload (``POST
/sessions/{id}/upload``, multipart, a fresh chunk number each time so that every upload is
stored, never answered as a duplicate), or, for reference, the liveness probe
(``GET /health/live``: no token, no database).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOUNDARY = "lahstats-bench-boundary"


@dataclass(frozen=True)
class Load:
    """What to send: ``kind`` is ``status``, ``upload`` or ``live`` (the liveness probe: no
    auth, no database, the server's own ceiling); uploads spread over ``session_ids`` (one
    chunk sequence per session), status polls hit the first."""

    base_url: str
    token: str
    kind: str
    session_ids: tuple[str, ...]
    connections: int
    duration_s: float
    max_requests: int
    audio: Path | None = None
    content_type: str = "audio/mp4"


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def summarise(latencies_s: list[float], ok: int, errors: int, wall_s: float) -> dict[str, Any]:
    ordered = sorted(latencies_s)

    def pct(q: float) -> float | None:
        if not ordered:
            return None
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "requests": ok + errors,
        "ok": ok,
        "errors": errors,
        "wall_s": round(wall_s, 3),
        "requests_per_s": round(ok / wall_s, 1) if wall_s else None,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "mean_ms": round(1000 * statistics.fmean(ordered), 2) if ordered else None,
    }


# --- wrk --------------------------------------------------------------------------------------


def run_wrk(load: Load, threads: int) -> dict[str, Any]:
    """wrk for ``load.duration_s`` with ``load.connections`` connections; uploads are made
    by a Lua script that builds each multipart body with the next chunk number."""
    threads = max(1, min(threads, load.connections))
    with tempfile.TemporaryDirectory(prefix="lahstats-wrk-") as tmp:
        command = ["wrk", f"-t{threads}", f"-c{load.connections}", f"-d{load.duration_s:g}s"]
        command += ["--latency", "--timeout", "10s"]
        if load.kind == "upload":
            script = Path(tmp) / "upload.lua"
            script.write_text(_upload_lua(load, threads))
            command += ["-s", str(script), f"{load.base_url}/sessions/"]
        elif load.kind == "live":
            command += [f"{load.base_url}/health/live"]
        else:
            command += ["-H", f"Authorization: Bearer {load.token}"]
            command += [f"{load.base_url}/sessions/{load.session_ids[0]}/status"]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=load.duration_s + 60, check=True
        )
    return {**parse_wrk(done.stdout), "generator": "wrk", "threads": threads}


def _upload_lua(load: Load, threads: int) -> str:
    """Thread t of wrk owns sessions t, t+threads, ...; its n-th request uploads chunk
    n // (its session count) to its (n mod count)-th session, so no chunk repeats."""
    assert load.audio is not None
    sessions = ", ".join(f'"{s}"' for s in load.session_ids)
    return f"""
local sessions = {{{sessions}}}
local threads = {threads}
local counter = 0
local f = assert(io.open("{load.audio}", "rb"))
local audio = f:read("*all")
f:close()
local next_index = 0
function setup(thread)
  thread:set("index", next_index)
  next_index = next_index + 1
end
local function mine()
  local owned = {{}}
  for i = index + 1, #sessions, threads do owned[#owned + 1] = sessions[i] end
  return owned
end
local owned = nil
function request()
  if owned == nil then owned = mine() end
  local session = owned[counter % #owned + 1]
  local number = math.floor(counter / #owned)
  counter = counter + 1
  local body = "--{BOUNDARY}\\r\\n"
    .. 'Content-Disposition: form-data; name="chunk_number"\\r\\n\\r\\n'
    .. number .. "\\r\\n--{BOUNDARY}\\r\\n"
    .. 'Content-Disposition: form-data; name="file"; filename="chunk{load.audio.suffix}"\\r\\n'
    .. "Content-Type: {load.content_type}\\r\\n\\r\\n"
    .. audio .. "\\r\\n--{BOUNDARY}--\\r\\n"
  return wrk.format("POST", "/sessions/" .. session .. "/upload", {{
    ["Authorization"] = "Bearer {load.token}",
    ["Content-Type"] = "multipart/form-data; boundary={BOUNDARY}",
  }}, body)
end
"""


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms) and error counts from ``wrk --latency``."""

    def ms(label: str) -> float | None:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
        return round(float(match[1]) * _UNITS[match[2]], 2) if match else None

    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    requests = int(total[1]) if total else 0
    errors = (int(non_2xx[1]) if non_2xx else 0) + (
        sum(int(x) for x in socket_errors.groups()) if socket_errors else 0
    )
    wall = float(total[2]) * _UNITS[total[3]] / 1000 if total else 0.0
    ok = max(0, requests - (int(non_2xx[1]) if non_2xx else 0))
    return {
        "requests": requests,
        "ok": ok,
        "errors": errors,
        "wall_s": round(wall, 3),
        # wrk's own figure counts error responses too; ours counts the successful ones.
        "requests_per_s": round(ok / wall, 1) if wall else (float(rate[1]) if rate else None),
        "p50_ms": ms("50%"),
        "p90_ms": ms("90%"),
        "p99_ms": ms("99%"),
        "mean_ms": _wrk_mean(output),
    }


def _wrk_mean(output: str) -> float | None:
    match = re.search(r"^\s*Latency\s+([\d.]+)(us|ms|s|m)\s", output, re.M)
    return round(float(match[1]) * _UNITS[match[2]], 2) if match else None


# --- our own generator -----------------------------------------------------------------------


def run_python(load: Load, processes: int) -> dict[str, Any]:
    """``processes`` spawned processes, each running ``connections / processes`` asyncio
    tasks on one httpx client; stops at ``max_requests`` in all or ``duration_s``."""
    processes = max(1, min(processes, load.connections))
    shares = [(load, i, processes) for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.starmap(_generate, shares)
    latencies = [x for part in parts for x in part["latencies"]]
    wall = max(p["finished"] for p in parts) - min(p["started"] for p in parts)
    ok = sum(p["ok"] for p in parts)
    errors = sum(p["errors"] for p in parts)
    return {
        **summarise(latencies, ok, errors, wall),
        "generator": "python (asyncio + httpx)",
        "processes": processes,
        "error_samples": [e for p in parts for e in p["error_samples"]][:5],
    }


def _generate(load: Load, index: int, processes: int) -> dict[str, Any]:
    return asyncio.run(_generate_async(load, index, processes))


async def _generate_async(load: Load, index: int, processes: int) -> dict[str, Any]:
    import httpx

    tasks = len(range(index, load.connections, processes))
    budget = len(range(index, load.max_requests, processes))
    state: dict[str, Any] = {"left": budget, "ok": 0, "errors": 0, "latencies": [], "samples": []}
    audio = load.audio.read_bytes() if load.audio else b""
    limits = httpx.Limits(max_connections=tasks, max_keepalive_connections=tasks)
    headers = {"Authorization": f"Bearer {load.token}"}
    started = time.time()
    deadline = time.monotonic() + load.duration_s
    async with httpx.AsyncClient(
        base_url=load.base_url, headers=headers, limits=limits, timeout=30
    ) as client:
        await asyncio.gather(
            *(
                _connection(client, load, audio, index + t * processes, state, deadline)
                for t in range(tasks)
            )
        )
    return {
        "started": started,
        "finished": time.time(),
        "ok": state["ok"],
        "errors": state["errors"],
        "latencies": state["latencies"],
        "error_samples": state["samples"],
    }


async def _connection(
    client: Any, load: Load, audio: bytes, slot: int, state: dict[str, Any], deadline: float
) -> None:
    """One connection's requests, back to back; upload slot k owns session k (mod n)."""
    session = load.session_ids[slot % len(load.session_ids)]
    # slots sharing a session take interleaved chunk numbers so none repeats
    stride = -(-load.connections // len(load.session_ids))
    number = slot // len(load.session_ids)
    while state["left"] > 0 and time.monotonic() < deadline:
        state["left"] -= 1
        began = time.perf_counter()
        if load.kind == "upload":
            resp = await client.post(
                f"/sessions/{session}/upload",
                files={
                    "file": (
                        f"chunk{load.audio.suffix if load.audio else ''}",
                        audio,
                        load.content_type,
                    )
                },
                data={"chunk_number": str(number)},
            )
            number += stride
        elif load.kind == "live":
            resp = await client.get("/health/live")
        else:
            resp = await client.get(f"/sessions/{session}/status")
        state["latencies"].append(time.perf_counter() - began)
        if resp.status_code < 300:
            state["ok"] += 1
        else:
            state["errors"] += 1
            if len(state["samples"]) < 3:
                state["samples"].append(f"{resp.status_code} {resp.text[:200]}")
