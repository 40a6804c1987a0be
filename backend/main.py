"""The app factory: ``create_app(settings)`` builds the resources once (lifespan) and wires the
routes. ``uvicorn backend.main:app`` serves the default settings."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI, Request, Response

from backend.deps import Resources
from backend.errors import install_error_handlers
from backend.routes import groups, health, media, metrics, sessions
from config import Settings
from db import create_db_engine, create_session_factory
from observability import REQUEST_SECONDS, configure_logging
from storage import create_storage


def build_resources(settings: Settings) -> Resources:
    engine = create_db_engine(settings)
    return Resources(
        settings=settings,
        engine=engine,
        session_factory=create_session_factory(engine),
        redis=redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=5,
            socket_connect_timeout=2,
            health_check_interval=30,
        ),
        storage=create_storage(settings),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings)
        resources = build_resources(settings)
        app.state.resources = resources
        yield
        resources.redis.close()
        resources.engine.dispose()

    app = FastAPI(
        title="LahStats API",
        version="0.1.0",
        description="Counts who said 'lah', 'walao', 'sia'... in a group's conversation.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.middleware("http")(_record_request)
    for module in (health, groups, sessions, media, metrics):
        app.include_router(module.router)
    return app


async def _record_request(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Latency and count by route template (not raw path: ids would explode the labels)."""
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    template = getattr(route, "path", "unmatched")
    REQUEST_SECONDS.labels(template, request.method, str(response.status_code)).observe(
        time.perf_counter() - started
    )
    return response


def __getattr__(name: str) -> FastAPI:
    # `uvicorn backend.main:app` without building an app at import time for everyone else.
    if name == "app":
        return create_app()
    raise AttributeError(name)
