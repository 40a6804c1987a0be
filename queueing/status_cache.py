"""The status the app polls, cached in Redis so that a poll costs no database round trip.

Postgres stays the source of truth. Every change of what ``GET /sessions/{id}/status`` shows
bumps the session's ``status_version`` in the same transaction (``lifecycle`` and
``processing.progress`` do), and after the commit the new :class:`StatusSnapshot` is written
here. A write only replaces an older version (a compare in Redis, atomic), so two commits
whose writes arrive out of order, or a reader filling a miss with what it read from Postgres a
moment ago, never put an older status over a newer one. Entries expire after
``STATUS_CACHE_TTL_S``: a write lost while Redis was unreachable is corrected from Postgres by
the first read after that, at the latest.

An entry is ``b"<version> <group id> <body JSON>"``: the version first, for the compare; the
group, for the membership check; the body exactly as the API sends it.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass

import redis
import redis.asyncio

KEY_PREFIX = "lahstats:status:"

# KEYS[1] the entry; ARGV: version, entry, seconds to live. 1 if written, 0 if Redis already
# holds this version or a newer one.
_WRITE_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(string.match(current, '^%d+')) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


@dataclass(frozen=True)
class StatusSnapshot:
    """What a session's status poll shows at one ``version``, with the group whose members may
    see it. ``body`` is the JSON of the contract's status object."""

    session_id: uuid.UUID
    group_id: uuid.UUID
    version: int
    body: bytes

    @classmethod
    def of(
        cls,
        session_id: uuid.UUID,
        group_id: uuid.UUID,
        version: int,
        *,
        status: str,
        progress: int,
        stage: str | None,
        error_message: str | None,
        warnings: list[str],
        chunks_uploaded: int = 0,
        chunks_heard: int = 0,
    ) -> StatusSnapshot:
        fields = {
            "status": status,
            "progress": progress,
            "stage": stage,
            "error_message": error_message,
            "warnings": list(warnings),
            "chunks_uploaded": chunks_uploaded,
            "chunks_heard": chunks_heard,
        }
        body = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(session_id, group_id, version, body)

    @property
    def status(self) -> str:
        return str(json.loads(self.body)["status"])

    @property
    def chunks_heard(self) -> int:
        return int(json.loads(self.body).get("chunks_heard", 0))

    def entry(self) -> bytes:
        return b"%d %s %s" % (self.version, self.group_id.hex.encode(), self.body)

    @classmethod
    def from_entry(cls, session_id: uuid.UUID, entry: bytes) -> StatusSnapshot:
        version, group_id, body = entry.split(b" ", 2)
        return cls(session_id, uuid.UUID(group_id.decode()), int(version), body)


def key(session_id: uuid.UUID) -> str:
    return f"{KEY_PREFIX}{session_id}"


def write(connection: redis.Redis, snapshot: StatusSnapshot, ttl_s: int) -> bool:
    """Store ``snapshot`` unless Redis holds this version or a newer one; True if stored."""
    stored = connection.eval(
        _WRITE_IF_NEWER, 1, key(snapshot.session_id), snapshot.version, snapshot.entry(), ttl_s
    )
    return bool(stored)


def forget_status(connection: redis.Redis, session_id: uuid.UUID) -> None:
    """Drop a deleted session's cached status, best effort (it expires on its own anyway)."""
    with contextlib.suppress(redis.RedisError):
        connection.delete(key(session_id))


async def read(connection: redis.asyncio.Redis, session_id: uuid.UUID) -> StatusSnapshot | None:
    """The cached snapshot, or None when there is none."""
    entry: bytes | None = await connection.get(key(session_id))  # type: ignore[assignment]
    return StatusSnapshot.from_entry(session_id, entry) if entry else None


async def read_many(
    connection: redis.asyncio.Redis, session_ids: list[uuid.UUID]
) -> dict[uuid.UUID, StatusSnapshot]:
    """The cached snapshots of those sessions that have one, in one round trip."""
    if not session_ids:
        return {}
    entries: list[bytes | None] = await connection.mget([key(s) for s in session_ids])  # type: ignore[assignment]
    return {
        session_id: StatusSnapshot.from_entry(session_id, entry)
        for session_id, entry in zip(session_ids, entries, strict=True)
        if entry
    }
