"""A session's life, in one place: every status change of a session happens here.

    recording ──end──▶ processing ──mark_ready──▶ ready_for_claiming ◀──unclaim── completed
                          │  ▲  take / release            └──────────claim_all──────▶┘
                          │  └──────────── reset ◀── failed, ready, completed
                          └──fail / give_up──▶ failed

Each function changes a session row the caller has locked (``SELECT ... FOR UPDATE``) and
commits nothing: the transaction belongs to the caller (the request, the job). A change that
someone outside must hear of returns a :class:`Notice`; the caller hands it to :func:`notify`
after its commit, so a failure reached by any path (the job, the reconciler, a worker that
never came back) sends the same webhook and logs the same event.

Every change of what a status poll shows bumps the session's ``status_version`` here (and in
``processing.progress``, which moves the progress of a running session); a session factory
passed to :func:`publish_status` then writes the new status into the cache
(``queueing.status_cache``) after each commit, whatever path made the change.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
import structlog
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import object_session, sessionmaker

from config import Settings
from models import Session, SessionStatus
from queueing import status_cache
from queueing.status_cache import StatusSnapshot
from queueing.webhooks import enqueue_event

log = structlog.get_logger(__name__)


class Stage(enum.StrEnum):
    """What a session is doing, as the app shows it: shared by progress, logs and the
    database. The processing stages are named after what runs, in the order it runs."""

    QUEUED = "queued"
    CONCATENATING = "concatenating"  # decoding the chunks into one 16 kHz recording
    HEARING = "hearing"  # live sessions: hearing the chunks no chunk job has heard yet
    DIARIZING = "diarizing"
    TRANSCRIBING = "transcribing"
    VERIFYING = "verifying"  # the second listen at English that may be Singlish
    ANALYSING = "analysing"  # corrections, target-word occurrences, an emotion per segment
    VOICES = "voices"  # each speaker's voice (CAM++), for claim suggestions from voiceprints
    CLIPS = "sample_clips"  # sample and evidence clips, encoded and stored
    SAVING = "saving_results"
    DONE = "done"


GAVE_UP = (
    "gave up after {attempts} attempts: the worker processing this session stopped each "
    "time without finishing (killed, out of memory, or a timeout)"
)
NO_SPEECH = "no speech was heard in this recording"


@dataclass(frozen=True)
class Notice:
    """A change the outside hears of: the session's webhook event, and a log line."""

    session_id: uuid.UUID
    status: SessionStatus
    webhook_url: str | None
    error_message: str | None = None


def end_recording(
    session: Session,
    *,
    num_speakers: int | None,
    min_speakers: int | None,
    max_speakers: int | None,
    webhook_url: str | None,
    now: datetime,
) -> None:
    """recording → processing, with the speaker-count hints the diarizer will honour."""
    assert session.status is SessionStatus.RECORDING, session.status
    session.num_speakers, session.min_speakers, session.max_speakers = (
        num_speakers,
        min_speakers,
        max_speakers,
    )
    session.webhook_url = webhook_url
    session.ended_at = now
    _queue(session)
    _status_changed(session)


def chunk_uploaded(session: Session) -> None:
    """One more chunk stored while recording (a status poll shows how many)."""
    assert session.status is SessionStatus.RECORDING, session.status
    session.chunks_uploaded = (session.chunks_uploaded or 0) + 1
    _status_changed(session)


def chunks_heard(session: Session, *, heard: int) -> None:
    """``heard`` of the session's chunks have a stored hearing now."""
    if session.chunks_heard != heard:
        session.chunks_heard = heard
        _status_changed(session)


def take(session: Session, *, lease: timedelta, now: datetime) -> None:
    """Start an attempt: count it and hold the lease."""
    assert session.status is SessionStatus.PROCESSING, session.status
    session.attempts += 1
    session.lease_expires_at = now + lease
    if session.error_message is not None:
        session.error_message = None
        _status_changed(session)


def release(session: Session) -> None:
    """Give the session back after a transient failure: it stays ``processing``, the attempt
    does not count, and the reconciler enqueues it again."""
    session.lease_expires_at = None
    session.attempts -= 1


def fail(session: Session, message: str) -> Notice:
    """processing → failed, saying why (the message names the stage, or the attempts)."""
    session.status = SessionStatus.FAILED
    session.error_message = message[:2000]
    session.lease_expires_at = None
    _status_changed(session)
    log.error("session.failed", session_id=str(session.id), error=session.error_message)
    return _notice(session)


def give_up(session: Session) -> Notice:
    """Fail a session whose workers kept vanishing (it used up its attempts)."""
    return fail(session, GAVE_UP.format(attempts=session.attempts))


def mark_ready(session: Session, *, speakers: int, warnings: list[str], now: datetime) -> Notice:
    """processing → ready_for_claiming with results saved; a session in which nobody spoke
    has nobody to claim, so it is completed at once (with a warning saying so)."""
    session.status = SessionStatus.READY_FOR_CLAIMING if speakers else SessionStatus.COMPLETED
    session.warnings = warnings if speakers or NO_SPEECH in warnings else [*warnings, NO_SPEECH]
    session.progress, session.stage = 100, Stage.DONE.value
    session.processed_at, session.lease_expires_at = now, None
    _status_changed(session)
    log.info("session.processed", session_id=str(session.id), status=session.status.value)
    return _notice(session)


def reset(session: Session) -> None:
    """failed / ready / completed → processing again, with a fresh set of attempts."""
    assert session.status is not SessionStatus.RECORDING, session.status
    session.attempts = 0
    session.error_message = None
    session.lease_expires_at = None
    _queue(session)
    _status_changed(session)


def claimed(session: Session, *, unclaimed_left: int) -> None:
    """A speaker was claimed: once none is left unclaimed the session is completed."""
    if unclaimed_left == 0 and session.status is not SessionStatus.COMPLETED:
        session.status = SessionStatus.COMPLETED
        _status_changed(session)


def unclaimed(session: Session) -> None:
    """A claim was undone: the session waits for claims again."""
    if session.status is not SessionStatus.READY_FOR_CLAIMING:
        session.status = SessionStatus.READY_FOR_CLAIMING
        _status_changed(session)


def _queue(session: Session) -> None:
    session.status = SessionStatus.PROCESSING
    session.progress, session.stage = 0, Stage.QUEUED.value


def _status_changed(session: Session) -> None:
    session.status_version = (session.status_version or 0) + 1
    db = object_session(session)
    if db is not None:
        announce(db, status_snapshot(session))


def status_snapshot(session: Session) -> StatusSnapshot:
    """What a status poll of ``session`` shows, at its current version."""
    return StatusSnapshot.of(
        session.id,
        session.group_id,
        session.status_version or 0,
        status=session.status.value,
        progress=session.progress,
        stage=session.stage,
        error_message=session.error_message,
        warnings=list(session.warnings or []),
        chunks_uploaded=session.chunks_uploaded or 0,
        chunks_heard=session.chunks_heard or 0,
    )


_ANNOUNCED = "lahstats.status_changes"  # key in a database session's ``info``


def announce(db: DbSession, snapshot: StatusSnapshot) -> None:
    """Have ``snapshot`` written to the status cache once ``db`` commits (forgotten if it
    rolls back); a later snapshot of the same session in the transaction replaces it."""
    db.info.setdefault(_ANNOUNCED, {})[snapshot.session_id] = snapshot


def publish_status(factory: sessionmaker[DbSession], connection: redis.Redis, ttl_s: int) -> None:
    """After every commit of a database session made by ``factory``, write the status of each
    session it changed into the cache. A failed write is logged and left to the entry's
    expiry: the commit stands, and Postgres is the truth a later read falls back to."""

    @event.listens_for(factory, "after_commit")
    def _publish(db: DbSession) -> None:
        for snapshot in db.info.pop(_ANNOUNCED, {}).values():
            try:
                status_cache.write(connection, snapshot, ttl_s)
            except RedisError as exc:
                log.warning(
                    "session.status_cache_write_failed",
                    session_id=str(snapshot.session_id),
                    error=str(exc),
                )

    @event.listens_for(factory, "after_rollback")
    def _forget(db: DbSession) -> None:
        db.info.pop(_ANNOUNCED, None)


def _notice(session: Session) -> Notice:
    return Notice(session.id, session.status, session.webhook_url, session.error_message)


def notify(connection: redis.Redis | None, settings: Settings, notice: Notice | None) -> None:
    """After the commit: queue the session's webhook event, if it asked for one (``None``
    connection: no queue here, as in ``lahstats process``)."""
    if notice is None or notice.webhook_url is None or connection is None:
        return
    enqueue_event(
        connection,
        settings,
        notice.webhook_url,
        notice.session_id,
        notice.status.value,
        notice.error_message,
    )
