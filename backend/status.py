"""Status polls and event streams without a database round trip each.

A poll reads the session's cached status (``queueing.status_cache``: written after every
commit that changes it, never replaced by an older version) and checks the caller's
membership against the memberships this process has already seen in Postgres. Anything not
known that way (a cache miss, a caller not yet seen, a client that has already seen a newer
version than the cache holds) is read from Postgres in one query, which also refills the
cache. So a status never goes backwards for a client that sends back its ``ETag``, and
authorization is Postgres's answer, remembered only when it was yes.

Event streams share one watcher per process: every ``events_poll_interval_s`` it reads the
cached status of every session any stream follows in one ``MGET`` (and, for those missing
from the cache, one query), then wakes the streams whose session changed. N streams cost one
Redis read per interval, not N database polls.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from redis.exceptions import RedisError
from sqlalchemy import select

import lifecycle
from backend import crud
from backend.deps import Resources
from models import Session
from queueing import status_cache
from queueing.status_cache import StatusSnapshot

log = structlog.get_logger(__name__)

# How long a membership seen in Postgres is trusted without asking again, seconds: how long a
# member who left (DELETE /groups/{id}/members/{user_id}) may still poll a session's status.
MEMBERSHIP_TRUST_S = 60.0
MAX_KNOWN_MEMBERSHIPS = 100_000


class KnownMembers:
    """(group, user) pairs this process has seen to be members, each for a while."""

    def __init__(self, trust_s: float = MEMBERSHIP_TRUST_S) -> None:
        self._trust_s = trust_s
        self._until: dict[tuple[uuid.UUID, uuid.UUID], float] = {}

    def remember(self, group_id: uuid.UUID, user_id: uuid.UUID) -> None:
        if len(self._until) >= MAX_KNOWN_MEMBERSHIPS:
            self._until.clear()
        self._until[(group_id, user_id)] = time.monotonic() + self._trust_s

    def knows(self, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        return self._until.get((group_id, user_id), 0.0) > time.monotonic()


@dataclass
class _Followed:
    """A session some streams of this process follow: its latest snapshot (None until read,
    and once the session is gone) and an event set (then replaced) at each change."""

    latest: StatusSnapshot | None = None
    gone: bool = False
    followers: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # the provisional transcript last read for the streams: (chunks heard then, the read)
    heard: tuple[int, asyncio.Future[crud.HeardSoFar]] | None = None

    def update(self, snapshot: StatusSnapshot | None) -> None:
        if snapshot is None:
            self.gone = True
        elif self.latest is not None and snapshot.version <= self.latest.version:
            return
        self.latest = snapshot
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


def _failed(read: asyncio.Future[crud.HeardSoFar]) -> bool:
    return read.done() and (read.cancelled() or read.exception() is not None)


class StatusReader:
    """The API process's reads of session statuses: polls and the shared stream watcher."""

    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._members = KnownMembers()
        self._followed: dict[uuid.UUID, _Followed] = {}

    async def poll(
        self, session_id: uuid.UUID, user_id: uuid.UUID, seen_version: int | None
    ) -> StatusSnapshot:
        """The session's status for a member (NotFound otherwise), never older than
        ``seen_version``, the version the client says it has already seen."""
        snapshot = await self._cached(session_id)
        if (
            snapshot is None
            or not self._members.knows(snapshot.group_id, user_id)
            or (seen_version is not None and snapshot.version < seen_version)
        ):
            snapshot = await run_in_threadpool(self._load_for_member, session_id, user_id)
        return snapshot

    async def _cached(self, session_id: uuid.UUID) -> StatusSnapshot | None:
        try:
            return await status_cache.read(self._resources.redis_async, session_id)
        except RedisError as exc:
            log.warning("status.cache_read_failed", error=str(exc))
            return None

    async def heard_so_far(self, session_id: uuid.UUID, chunks_heard: int) -> crud.HeardSoFar:
        """The live session's provisional transcript with at least ``chunks_heard`` chunks as
        far as the status knows: one short read off the event loop, shared by every stream
        following the session (they all wake on the same status)."""
        followed = self._followed.get(session_id)
        if followed is None:
            return await run_in_threadpool(self._heard_so_far, session_id)
        pending = followed.heard
        if pending is None or pending[0] < chunks_heard or _failed(pending[1]):
            read = asyncio.ensure_future(run_in_threadpool(self._heard_so_far, session_id))
            followed.heard = pending = (chunks_heard, read)
        # shielded: a stream closed while it waits must not cancel the read the others share
        return await asyncio.shield(pending[1])

    def _heard_so_far(self, session_id: uuid.UUID) -> crud.HeardSoFar:
        with self._resources.session_factory() as db:
            return crud.heard_so_far(db, session_id)

    def _load_for_member(self, session_id: uuid.UUID, user_id: uuid.UUID) -> StatusSnapshot:
        with self._resources.session_factory() as db:
            snapshot = lifecycle.status_snapshot(crud.session_for_member(db, session_id, user_id))
        self._members.remember(snapshot.group_id, user_id)
        self._fill([snapshot])
        return snapshot

    def _load(self, session_ids: list[uuid.UUID]) -> dict[uuid.UUID, StatusSnapshot]:
        with self._resources.session_factory() as db:
            sessions = db.scalars(select(Session).where(Session.id.in_(session_ids)))
            snapshots = {s.id: lifecycle.status_snapshot(s) for s in sessions}
        self._fill(list(snapshots.values()))
        return snapshots

    def _fill(self, snapshots: list[StatusSnapshot]) -> None:
        """Write what was read from Postgres into the cache (unless it holds newer)."""
        try:
            for snapshot in snapshots:
                status_cache.write(
                    self._resources.redis, snapshot, self._resources.settings.status_cache_ttl_s
                )
        except RedisError as exc:
            log.warning("status.cache_fill_failed", error=str(exc))

    async def follow(
        self, session_id: uuid.UUID, quiet_s: float
    ) -> AsyncIterator[StatusSnapshot | None]:
        """Each new status of the session as the watcher sees it, from the current one on;
        None after ``quiet_s`` seconds without one (time for a keep-alive). Ends if the
        session is deleted."""
        followed = self._followed.setdefault(session_id, _Followed())
        followed.followers += 1
        try:
            if followed.latest is None:
                await self.refresh([session_id])
            sent = -1
            while not followed.gone:
                changed, latest = followed.changed, followed.latest
                if latest is not None and latest.version > sent:
                    sent = latest.version
                    yield latest
                    continue
                try:
                    await asyncio.wait_for(changed.wait(), quiet_s)
                except TimeoutError:
                    yield None
        finally:
            followed.followers -= 1
            if followed.followers == 0:
                self._followed.pop(session_id, None)

    async def watch(self) -> None:
        """The watcher's loop (one task per process, started by the app's lifespan)."""
        interval = self._resources.settings.events_poll_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh(list(self._followed))
            except Exception as exc:  # the loop outlives a database or Redis blip
                log.warning("status.watch_failed", error=str(exc))

    async def refresh(self, session_ids: list[uuid.UUID]) -> None:
        """Read the followed sessions' statuses (cache, then Postgres for the rest) and wake
        the streams of those that changed."""
        if not session_ids:
            return
        try:
            found = await status_cache.read_many(self._resources.redis_async, session_ids)
        except RedisError as exc:
            log.warning("status.cache_read_failed", error=str(exc))
            found = {}
        missing = [s for s in session_ids if s not in found]
        if missing:
            found |= await run_in_threadpool(self._load, missing)
        for session_id in session_ids:
            followed = self._followed.get(session_id)
            if followed is not None:
                followed.update(found.get(session_id))


async def get_status_reader(request: Request) -> StatusReader:
    return request.app.state.status_reader


StatusReaderDep = Annotated[StatusReader, Depends(get_status_reader)]
