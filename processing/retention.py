"""Retention: a session's raw audio and clips are deleted some days after it was processed;
its text, counts and occurrences stay.

``AUDIO_RETENTION_DAYS`` (raw chunks) and ``CLIP_RETENTION_DAYS`` (sample and evidence clips)
are off unless set. Run by the workers' maintenance (hourly, one worker at a time) and by
``lahstats retention``; ``lahstats status`` shows what is due. Rows are let go of first, in a
transaction that holds the session's lock (a session being processed again is skipped), and the
objects are deleted after the commit; a chunk object left behind by a failure there is the
storage sweeper's (no chunk object without a row).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, delete, exists, select, update
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from config import Settings
from models import AudioChunk, Session, SessionSpeaker, SessionStatus, WordOccurrence
from processing.clips import delete_clips
from storage import Storage

log = structlog.get_logger(__name__)
RETENTION_EVERY_S = 3600
_SETTLED = (SessionStatus.READY_FOR_CLAIMING, SessionStatus.COMPLETED, SessionStatus.FAILED)


@dataclass(frozen=True)
class RetentionDue:
    """Sessions whose raw chunks, and whose clips, are past their retention."""

    chunks: list[uuid.UUID] = field(default_factory=list)
    clips: list[uuid.UUID] = field(default_factory=list)


def retention_due(
    session_factory: sessionmaker[DbSession], settings: Settings, now: datetime
) -> RetentionDue:
    """What :func:`apply_retention` would delete now."""
    with session_factory() as db:
        chunks = _due(
            db,
            settings.audio_retention_days,
            now,
            exists().where(AudioChunk.session_id == Session.id),
        )
        clips = _due(
            db,
            settings.clip_retention_days,
            now,
            exists().where(
                SessionSpeaker.session_id == Session.id, SessionSpeaker.sample_clip_key.is_not(None)
            )
            | exists().where(
                WordOccurrence.session_id == Session.id, WordOccurrence.clip_key.is_not(None)
            ),
        )
    return RetentionDue(chunks, clips)


def _due(
    db: DbSession, days: int | None, now: datetime, holding: ColumnElement[bool]
) -> list[uuid.UUID]:
    if days is None:
        return []
    return list(
        db.scalars(
            select(Session.id)
            .where(
                Session.status.in_(_SETTLED),
                Session.processed_at <= now - timedelta(days=days),
                holding,
            )
            .order_by(Session.processed_at)
        )
    )


def apply_retention(
    session_factory: sessionmaker[DbSession], storage: Storage, settings: Settings, now: datetime
) -> RetentionDue:
    """Delete what is due: raw chunks (rows and objects), then clips (the keys on speakers and
    occurrences, and the objects). Returns the sessions it acted on."""
    due = retention_due(session_factory, settings, now)
    done = RetentionDue(
        [s for s in due.chunks if _drop_chunks(session_factory, storage, s)],
        [s for s in due.clips if _drop_clips(session_factory, storage, s)],
    )
    if done.chunks or done.clips:
        log.info("retention.applied", chunks=len(done.chunks), clips=len(done.clips))
    return done


def _settled(db: DbSession, session_id: uuid.UUID) -> bool:
    session = db.get(Session, session_id, with_for_update=True)
    return session is not None and session.status in _SETTLED


def _drop_chunks(
    session_factory: sessionmaker[DbSession], storage: Storage, session_id: uuid.UUID
) -> bool:
    with session_factory() as db:
        if not _settled(db, session_id):
            return False
        keys = list(
            db.scalars(select(AudioChunk.storage_key).where(AudioChunk.session_id == session_id))
        )
        db.execute(delete(AudioChunk).where(AudioChunk.session_id == session_id))
        db.commit()
    delete_clips(storage, keys)  # best effort; the sweeper takes any chunk object left
    return True


def _drop_clips(
    session_factory: sessionmaker[DbSession], storage: Storage, session_id: uuid.UUID
) -> bool:
    with session_factory() as db:
        if not _settled(db, session_id):
            return False
        samples = db.scalars(
            select(SessionSpeaker.sample_clip_key).where(SessionSpeaker.session_id == session_id)
        )
        evidence = db.scalars(
            select(WordOccurrence.clip_key).where(WordOccurrence.session_id == session_id)
        )
        keys = {k for k in [*samples, *evidence] if k}
        db.execute(
            update(SessionSpeaker)
            .where(SessionSpeaker.session_id == session_id)
            .values(sample_clip_key=None)
        )
        db.execute(
            update(WordOccurrence)
            .where(WordOccurrence.session_id == session_id)
            .values(clip_key=None)
        )
        db.commit()
    delete_clips(storage, sorted(keys))
    return True
