"""The real backend, started for a benchmark and torn down after: a throw-away Postgres
database migrated by Alembic, a Redis database of its own choosing (db 14 by default) with a
queue name of its own, a data folder, uvicorn serving ``backend.main:app``, and ``lahstats
worker`` processes. Plus a small client for the API calls a phone makes.

Everything the subprocesses need reaches them as environment variables (``DATABASE_URL``,
``REDIS_URL``, ``DATA_DIR``, ``QUEUE_NAME``), exactly as a deployment configures them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psycopg
import redis
from prometheus_client.parser import text_string_to_metric_families

from bench.report import REPO, BenchError, proc_status_mib
from config import Settings

PG_ADMIN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_DEFAULT = "redis://127.0.0.1:6379/14"
CONTENT_TYPES = {".m4a": "audio/mp4", ".ogg": "audio/ogg", ".wav": "audio/wav"}
START_TIMEOUT_S = 300.0  # workers load every model before they listen


def add_stack_arguments(parser: Any) -> None:
    parser.add_argument("--pg-admin", default=PG_ADMIN_DEFAULT, help="Postgres admin URL")
    parser.add_argument("--redis-url", default=REDIS_DEFAULT, help="Redis URL (db 14 default)")


@dataclass
class Stack:
    """A running backend: its URL, the settings its processes run with, its processes."""

    base_url: str
    settings: Settings
    redis: redis.Redis
    api: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # sessions ended here, hence jobs in Redis (job id = session id), to clean up after
    job_ids: list[str] = field(default_factory=list)
    # each worker's Prometheus port (``METRICS_PORT``), in the order of ``workers``
    metrics_ports: list[int] = field(default_factory=list)

    def worker_peak_rss_mib(self) -> list[float | None]:
        return [proc_status_mib(w.pid, "VmHWM") for w in self.workers]

    def worker_counters(self, i: int = 0) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Worker ``i``'s counters as it exports them, by (sample name, labels)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_ports[i]}/metrics") as resp:
            text = resp.read().decode()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            if family.type == "counter"
            for sample in family.samples
        }


@contextmanager
def running_stack(
    *,
    api_workers: int,
    workers: int,
    pg_admin: str,
    redis_url: str,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """Start the backend (``workers`` may be 0), yield it, and remove every trace after:
    the processes, the database, the data folder and the queue's keys in Redis.

    ``extra_env`` is added to the environment of every process of the stack (API and
    workers alike, as a deployment sets a setting for all), e.g. ``LIVE_PROCESSING=false``."""
    tag = uuid.uuid4().hex[:10]
    database = f"lahstats_bench_{tag}"
    data_dir = Path(tempfile.mkdtemp(prefix="lahstats-bench-data-"))
    logs = data_dir / "logs"
    logs.mkdir()
    settings = Settings(
        environment="development",
        database_url=_database_url(pg_admin, database),
        redis_url=redis_url,
        data_dir=data_dir,
        queue_name=f"lahstats-bench-{tag}",
        log_level="WARNING",
    )
    connection = redis.Redis.from_url(redis_url)
    processes: list[subprocess.Popen[bytes]] = []
    job_ids: list[str] = []
    try:
        _create_database(pg_admin, database, settings.sqlalchemy_url)
        env = {**_environment(settings), **(extra_env or {})}
        port = _free_port()
        api = _spawn(_uvicorn(port, api_workers), env, logs / "api.log")
        processes.append(api)
        stack = Stack(f"http://127.0.0.1:{port}", settings, connection, api, job_ids=job_ids)
        for i in range(workers):
            metrics_port = _free_port()
            worker = _spawn(
                [sys.executable, "-m", "cli", "worker"],
                {**env, "METRICS_PORT": str(metrics_port)},
                logs / f"w{i}.log",
            )
            processes.append(worker)
            stack.workers.append(worker)
            stack.metrics_ports.append(metrics_port)
        _wait_for_api(stack.base_url, api, logs / "api.log")
        _wait_for_workers(stack, logs)
        yield stack
    finally:
        _stop(processes)
        _drop_queue_keys(connection, settings.queue_name, job_ids)
        connection.close()
        _drop_database(pg_admin, database)
        shutil.rmtree(data_dir, ignore_errors=True)


def _database_url(admin: str, name: str) -> str:
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def _create_database(admin: str, name: str, url: str) -> None:
    from migrations.runner import upgrade

    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise BenchError(f"cannot create database {name} via {admin}: {exc}") from exc
    upgrade(url)


def _drop_database(admin: str, name: str) -> None:
    with suppress(psycopg.Error), psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_queue_keys(connection: redis.Redis, queue_name: str, job_ids: list[str]) -> None:
    """Delete this run's queues, registries, jobs (job id = session id) and worker records
    from Redis; other queues in the same database are left alone."""
    with suppress(redis.RedisError):
        # (redis-py's stubs type replies for sync and async clients at once)
        queue_keys: Any = connection.smembers("rq:queues")
        for queue_key in queue_keys:
            if queue_key.decode().startswith(f"rq:queue:{queue_name}"):
                connection.srem("rq:queues", queue_key)
        patterns = [f"rq:*:{queue_name}*", *(f"rq:*{job_id}*" for job_id in job_ids)]
        keys: list[Any] = [k for pattern in patterns for k in connection.scan_iter(match=pattern)]
        for key in connection.scan_iter(match="rq:worker:*"):
            queues: Any = connection.hget(key, "queues") or b""
            if queue_name.encode() in queues:
                name = key.removeprefix(b"rq:worker:")
                connection.srem("rq:workers", key)
                keys += [key, b"lahstats:worker:" + name]
        if keys:
            connection.delete(*keys)


def _environment(settings: Settings) -> dict[str, str]:
    """This process's environment (PATH, HOME...) plus the backend's settings."""
    env = dict(os.environ)
    env.update(
        ENVIRONMENT=settings.environment,
        DATABASE_URL=settings.sqlalchemy_url,
        REDIS_URL=settings.redis_url,
        DATA_DIR=str(settings.data_dir),
        QUEUE_NAME=settings.queue_name,
        LOG_LEVEL=settings.log_level,
        PYTHONUNBUFFERED="1",
    )
    return env


def _uvicorn(port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "backend.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out: IO[bytes] = log.open("wb")
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_api(base_url: str, api: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise BenchError(f"uvicorn exited: {log.read_text()[-2000:]}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise BenchError(f"the API did not become healthy in 60 s: {log.read_text()[-2000:]}")


def _wait_for_workers(stack: Stack, logs: Path) -> None:
    """Until every worker has registered on the queue (i.e. loaded its models)."""
    from rq import Queue, Worker

    if not stack.workers:
        return
    queue = Queue(stack.settings.queue_name, connection=stack.redis)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for i, worker in enumerate(stack.workers):
            if worker.poll() is not None:
                raise BenchError(f"worker {i} exited: {(logs / f'w{i}.log').read_text()[-2000:]}")
        if len(Worker.all(queue=queue)) >= len(stack.workers):
            return
        time.sleep(0.2)
    raise BenchError(f"workers not ready after {START_TIMEOUT_S:.0f} s")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process group (RQ's warm shutdown; uvicorn's graceful stop), then
    SIGKILL whatever is still there after 20 s."""
    for process in processes:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for process in processes:
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# --- the phone's side of the API ------------------------------------------------------------


class PhoneClient:
    """The calls a phone makes, as one user, over real HTTP."""

    def __init__(self, stack: Stack, timeout_s: float = 60.0) -> None:
        from backend.auth import issue_token

        self.stack = stack
        self.user_id = uuid.uuid4()
        self.headers = {"Authorization": f"Bearer {issue_token(stack.settings, self.user_id)}"}
        self.http = httpx.Client(base_url=stack.base_url, headers=self.headers, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def group(self, name: str = "bench") -> str:
        return str(self._ok(self.http.post("/groups", json={"name": name}))["id"])

    def start(self, group_id: str) -> str:
        resp = self.http.post("/sessions/start", json={"group_id": group_id})
        return str(self._ok(resp)["session_id"])

    def upload(self, session_id: str, number: int, path: Path) -> None:
        with path.open("rb") as stream:
            resp = self.http.post(
                f"/sessions/{session_id}/upload",
                files={"file": (path.name, stream, CONTENT_TYPES.get(path.suffix, "audio/wav"))},
                data={"chunk_number": str(number)},
            )
        self._ok(resp)

    def end(self, session_id: str, num_speakers: int | None = None) -> None:
        body = {"num_speakers": num_speakers} if num_speakers else None
        self.stack.job_ids.append(session_id)
        self._ok(self.http.post(f"/sessions/{session_id}/end", json=body))

    def transcript(self, session_id: str) -> list[dict[str, Any]]:
        segments: list[dict[str, Any]] = self._ok(
            self.http.get(f"/sessions/{session_id}/transcript")
        )["segments"]
        return segments

    def speakers(self, session_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._ok(self.http.get(f"/sessions/{session_id}/speakers"))[
            "speakers"
        ]
        return found

    def status(self, session_id: str) -> dict[str, Any]:
        return self._ok(self.http.get(f"/sessions/{session_id}/status"))

    def wait_until_processed(
        self, session_id: str, timeout_s: float, poll_s: float = 0.25
    ) -> dict[str, Any]:
        """Poll the status until the session leaves ``processing``; fail on ``failed``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status(session_id)
            if status["status"] == "failed":
                raise BenchError(f"session {session_id} failed: {status['error_message']}")
            if status["status"] not in ("recording", "processing"):
                return status
            time.sleep(poll_s)
        raise BenchError(f"session {session_id} not processed within {timeout_s:.0f} s")

    @staticmethod
    def _ok(resp: httpx.Response) -> dict[str, Any]:
        if resp.status_code >= 300:
            raise BenchError(f"{resp.request.method} {resp.request.url.path}: {resp.text}")
        body: dict[str, Any] = resp.json()
        return body
