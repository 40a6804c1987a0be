"""What routes receive: the resources built once in the app's lifespan, a database session per
request, and the authenticated user."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from backend import crud
from backend.auth import decode_user_id
from backend.errors import Unauthorized
from config import Settings
from models import Profile
from storage import Storage


@dataclass(frozen=True)
class Resources:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    redis: redis.Redis
    # the same Redis for the reads routes await (status polls and streams)
    redis_async: AsyncRedis
    storage: Storage


# The dependencies that only look something up are ``async def``: FastAPI runs a plain
# ``def`` dependency on the threadpool, a hop that costs more than the lookup.
async def get_resources(request: Request) -> Resources:
    return request.app.state.resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_settings(resources: ResourcesDep) -> Settings:
    return resources.settings


async def get_storage(resources: ResourcesDep) -> Storage:
    return resources.storage


async def get_redis(resources: ResourcesDep) -> redis.Redis:
    return resources.redis


def get_db(resources: ResourcesDep) -> Iterator[Session]:
    """One session per request; routes commit explicitly (the request is the transaction's
    edge), anything uncommitted is rolled back on close."""
    with resources.session_factory() as db:
        yield db


SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
DbDep = Annotated[Session, Depends(get_db)]

_bearer = HTTPBearer(auto_error=False, description="A Supabase access token (JWT).")


async def get_current_user_id(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> uuid.UUID:
    """The caller's id from their token, without touching the database (for reads that
    check membership anyway: a user without a profile is a member of nothing)."""
    if credentials is None:
        raise Unauthorized("missing bearer token", code="missing_token")
    return decode_user_id(credentials.credentials, settings)


CurrentUserId = Annotated[uuid.UUID, Depends(get_current_user_id)]


def get_current_user(db: DbDep, user_id: CurrentUserId) -> Profile:
    """The caller's profile, created on first sight of their ``sub``."""
    profile = db.get(Profile, user_id)  # the common case: one primary-key read, no write
    if profile is None:
        profile = crud.ensure_profile(db, user_id)
        db.commit()
    return profile


CurrentUser = Annotated[Profile, Depends(get_current_user)]
