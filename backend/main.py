"""The app factory: ``create_app(settings)`` builds the resources once (lifespan) and wires the
routes. ``uvicorn backend.main:app`` serves the default settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI

from backend.deps import Resources
from backend.errors import install_error_handlers
from backend.routes import groups, health, media, sessions
from config import Settings
from db import create_db_engine, create_session_factory
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
    for module in (health, groups, sessions, media):
        app.include_router(module.router)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn backend.main:app` without building an app at import time for everyone else.
    if name == "app":
        return create_app()
    raise AttributeError(name)
