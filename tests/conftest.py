"""Shared fixtures: a real Postgres database per test (cloned from a template migrated once by
Alembic), a real Redis database flushed around each test, real files on disk."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from backend.auth import issue_token
from backend.main import create_app
from config import Settings
from db import create_db_engine, create_session_factory
from migrations.runner import upgrade
from tests.paths import CORPUS, PG_ADMIN, REDIS_TEST_URL, REPO, SINGLISH

TEMPLATE_DB = f"lahstats_tmpl_{os.getpid()}"
PYANNOTE_CALIBRATION = CORPUS / "diarization/nemo_an4_diarize_test/an4_diarize_test.wav"
# Nothing in the tests may reach the model hub: a loader that tries fails at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _sqlalchemy_url(dbname: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{dbname}"


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def template_db() -> Iterator[str]:
    """A database migrated by ``alembic upgrade head`` once per run; tests clone it."""
    _admin(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
    _admin(f'CREATE DATABASE "{TEMPLATE_DB}"')
    upgrade(_sqlalchemy_url(TEMPLATE_DB))
    yield TEMPLATE_DB
    _admin(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')


@contextmanager
def _database_from(template: str) -> Iterator[str]:
    """A new database copied from ``template`` (its name), dropped on leaving."""
    name = f"lahstats_t_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield name
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_template(template_db: str) -> str:
    """The database each test's own is a copy of: the migrated schema. A module whose tests
    all start from one expensive state (a processed session) overrides this with the name of
    a ``prepared`` database it filled once."""
    return template_db


@pytest.fixture
def database_url(database_template: str) -> Iterator[str]:
    """A fresh database for this test only: our schema, or the module's prepared state."""
    with _database_from(database_template) as name:
        yield _sqlalchemy_url(name)


def _test_settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        redis_url=REDIS_TEST_URL,
        data_dir=data_dir,
        queue_name="lahstats-test",
    )


@dataclass(frozen=True)
class Prepared:
    """A state some tests start from, made once: its database (the template of each test's
    database) and its storage (copied into each test's ``data_dir`` by the module)."""

    database: str
    settings: Settings


@pytest.fixture(scope="session")
def prepare(template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Callable:
    """``with prepare() as prepared``: settings on a database of our schema and on storage of
    their own, for a module fixture to fill once through the real API and worker and then
    yield (with every connection to the database closed: it is the template of each test's
    database). The database is dropped on leaving."""

    @contextmanager
    def make() -> Iterator[Prepared]:
        with _database_from(template_db) as name:
            data_dir = tmp_path_factory.mktemp("prepared") / "data"
            yield Prepared(name, _test_settings(_sqlalchemy_url(name), data_dir))

    return make


@pytest.fixture
def redis_conn() -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(REDIS_TEST_URL)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def settings(database_url: str, redis_conn: redis.Redis, tmp_path: Path) -> Settings:
    return _test_settings(database_url, tmp_path / "data")


@pytest.fixture
def session_factory(settings: Settings) -> Iterator[sessionmaker[DbSession]]:
    """Database sessions on this test's database, made as the API and the worker make them."""
    engine = create_db_engine(settings)
    yield create_session_factory(engine)
    engine.dispose()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    headers: dict[str, str]


@pytest.fixture
def make_user(settings: Settings) -> Callable[..., User]:
    """``make()``: a new user's token; ``make(user_id)``: one for a user the test's database
    already holds (a ``prepared`` one's)."""

    def make(user_id: uuid.UUID | None = None) -> User:
        user_id = user_id or uuid.uuid4()
        token = issue_token(settings, user_id)
        return User(user_id, {"Authorization": f"Bearer {token}"})

    return make


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory):
    """The embedded offline models (Whisper base with hotwords and the verifier, Resemblyzer,
    MiniLM + head), loaded once per run."""
    from processor import load_engines

    return load_engines(Settings(environment="test", data_dir=tmp_path_factory.mktemp("models")))


@pytest.fixture
def live_app(settings: Settings) -> FastAPI:
    """The app ``live_server`` serves (its resources exist while it is served)."""
    return create_app(settings)


@pytest.fixture
def live_server(live_app: FastAPI) -> Iterator[str]:
    """The app served by a real uvicorn on a free loopback port (for parallel requests)."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(live_app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def singlish_dev(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated Singlish dev conversations (../shared/singlish/make.py: espeak-ng + sox,
    exact references), made once per run."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("singlish")
    subprocess.run(
        [sys.executable, str(SINGLISH / "make.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="session")
def pyannote_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Local pyannote.audio 4 pipeline directories with random weights, one per style
    (``community-1``, ``3.1``), at a segmentation step of 1.0 (one chunk per 10 s; production
    uses 0.1) so that each run takes seconds (bench.random_models)."""
    pytest.importorskip("pyannote.audio", reason="the `pyannote` extra is not installed")
    import soundfile

    from bench.random_models import build_pyannote_pipeline

    # other speech than the tests run on, to calibrate the random segmentation model
    calibration, _ = soundfile.read(PYANNOTE_CALIBRATION, dtype="float32")
    root = tmp_path_factory.mktemp("pyannote")
    return {
        style: build_pyannote_pipeline(root / style, calibration, style, segmentation_step=1.0)
        for style in ("community-1", "3.1")
    }


@pytest.fixture
def worker_env(settings) -> dict[str, str]:
    """The environment of a real ``lahstats worker`` on this test's database, Redis and
    storage, with a short lease and a reconciler that runs every second."""
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "QUEUE_NAME": settings.queue_name,
        "DATA_DIR": str(settings.data_dir),
        "ENVIRONMENT": "test",
        "LEASE_S": "10",
        "RECONCILE_INTERVAL_S": "1",
        "PROGRESS_MIN_INTERVAL_S": "0.2",
    }


@pytest.fixture
def spawn_worker(worker_env) -> Iterator:
    """Start real worker processes (``spawn()``); any still running at the end are killed."""
    started: list[subprocess.Popen] = []

    def spawn() -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker"],
            env=worker_env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
