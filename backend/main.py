"""The app factory: ``create_app(settings)`` builds the resources once (lifespan) and wires the
routes. ``uvicorn backend.main:app`` serves the default settings."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import lifecycle
from backend.deps import Resources
from backend.errors import install_error_handlers
from backend.middleware import BodyLimitMiddleware, RequestMetricsMiddleware
from backend.routes import groups, health, me, media, metrics, occurrences, sessions
from backend.status import StatusReader
from config import Settings
from db import create_db_engine, create_session_factory
from observability import configure_logging
from storage import create_storage

# The session page (README, "The web page"): plain files, served as they are, no build step.
WEB_DIR = Path(__file__).with_name("web")


def build_resources(settings: Settings) -> Resources:
    engine = create_db_engine(settings)
    session_factory = create_session_factory(engine)
    timeouts: dict[str, Any] = {
        "socket_timeout": 5,
        "socket_connect_timeout": 2,
        "health_check_interval": 30,
    }
    connection = redis.Redis.from_url(settings.redis_url, **timeouts)
    lifecycle.publish_status(session_factory, connection, settings.status_cache_ttl_s)
    return Resources(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        redis=connection,
        redis_async=redis.asyncio.Redis.from_url(settings.redis_url, **timeouts),
        storage=create_storage(settings),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings)
        resources = build_resources(settings)
        app.state.resources = resources
        app.state.status_reader = StatusReader(resources)
        watcher = asyncio.create_task(app.state.status_reader.watch())
        if settings.environment != "test":  # the tests build an app per test: no point
            # Everything built so far (imports, settings, pools) lives as long as the process:
            # move it out of the collector's reach, or each full collection walks it all and
            # stalls every request in flight (status p99 70 -> 20 ms under wrk; BENCHMARKS.md)
            gc.collect()
            gc.freeze()
        yield
        watcher.cancel()
        await resources.redis_async.aclose()
        resources.redis.close()
        resources.engine.dispose()

    app = FastAPI(
        title="LahStats API",
        version="0.1.0",
        description="Counts who said 'lah', 'walao', 'sia'... in a group's conversation.",
        lifespan=lifespan,
        # A redirect to the slash-less path would be built from the request's Host header;
        # the API's paths are exact, so a trailing slash is a 404 instead.
        redirect_slashes=False,
        responses={422: {"description": VALIDATION_RULE}},
    )
    install_error_handlers(app)
    # the last added is the outermost: metrics see every answer, the body limit's 413s too
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(RequestMetricsMiddleware)
    for module in (health, groups, sessions, occurrences, me, media, metrics):
        app.include_router(module.router)
    app.mount("/app", StaticFiles(directory=WEB_DIR, html=True), name="app")
    return app


VALIDATION_RULE = (
    "The request is not acceptable as written: malformed JSON or multipart, a missing or "
    "mistyped field, a number out of range, text with control characters or over its length. "
    "Every such request gets 422 with code `validation_error` (never 400)."
)


def __getattr__(name: str) -> FastAPI:
    # `uvicorn backend.main:app` without building an app at import time for everyone else.
    if name == "app":
        return create_app()
    raise AttributeError(name)
