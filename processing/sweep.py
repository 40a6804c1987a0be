"""The storage sweeper: no chunk object without a row.

An upload stores its bytes and commits its row while holding the session's row lock, and
deletes the object when the commit fails; only a process that dies between the two leaves an
object behind. Once a session has stopped recording no upload can store anything for it, so
any chunk object of such a session that no row names is a stray: delete it.

Run by the workers' maintenance (sessions ended in the last day, at most hourly, by one worker
at a time) and by ``lahstats sweep`` (``--all`` for every session).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from models import AudioChunk, Session, SessionStatus
from storage import Storage, chunk_folder

log = structlog.get_logger(__name__)
# what the workers' hourly sweep covers: sessions that ended this recently
SWEEP_WINDOW = timedelta(days=1)
SWEEP_EVERY_S = 3600


def sweep_orphan_chunks(
    session_factory: sessionmaker[DbSession], storage: Storage, ended_since: datetime | None
) -> list[str]:
    """Delete the chunk objects without a row of every session that has stopped recording
    (and ended at or after ``ended_since``, when given). Returns the keys deleted."""
    query = select(Session.id).where(Session.status != SessionStatus.RECORDING)
    if ended_since is not None:
        query = query.where(Session.ended_at >= ended_since)
    with session_factory() as db:
        session_ids = list(db.scalars(query))
    deleted: list[str] = []
    for session_id in session_ids:
        deleted += _sweep_session(session_factory, storage, session_id)
    return deleted


def _sweep_session(
    session_factory: sessionmaker[DbSession], storage: Storage, session_id: uuid.UUID
) -> list[str]:
    stored = storage.list(chunk_folder(session_id))
    if not stored:
        return []
    with session_factory() as db:
        known = set(
            db.scalars(select(AudioChunk.storage_key).where(AudioChunk.session_id == session_id))
        )
    strays = [key for key in stored if key not in known]
    for key in strays:
        storage.delete(key)
        log.info("sweep.deleted_orphan_chunk", session_id=str(session_id), key=key)
    return strays
