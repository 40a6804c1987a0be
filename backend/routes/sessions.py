"""A session's life: start, upload chunks, end (enqueue), poll, read results, claim speakers."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import BinaryIO

from fastapi import APIRouter, File, Form, Response, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend import crud
from backend.audio_format import SNIFF_BYTES, declared_type_acceptable, sniff_audio_format
from backend.deps import CurrentUser, DbDep, RedisDep, ResourcesDep, SettingsDep, StorageDep
from backend.errors import AppError, Conflict, NotFound, PayloadTooLarge, UnsupportedMedia
from backend.routes.responses import errors
from backend.schemas import (
    ChunkStored,
    ClaimRequest,
    ClaimResult,
    OccurrencePublic,
    OccurrencesPublic,
    SegmentPublic,
    SessionEnd,
    SessionEnded,
    SessionStart,
    SessionStarted,
    SessionStatusPublic,
    SpeakerPublic,
    SpeakersPublic,
    TranscriptPublic,
)
from jobs import enqueue_processing
from models import (
    AudioChunk,
    ClaimType,
    Segment,
    Session,
    SessionSpeaker,
    SessionStatus,
    WordOccurrence,
)
from storage import chunk_key

log = logging.getLogger(__name__)
router = APIRouter(prefix="/sessions", tags=["sessions"])
_READ_BLOCK = 1024 * 1024


@router.post("/start", status_code=status.HTTP_201_CREATED, responses=errors(401, 404, 422))
def start_session(body: SessionStart, db: DbDep, user: CurrentUser) -> SessionStarted:
    """Open a recording session for one of the caller's groups."""
    crud.group_for_member(db, body.group_id, user.id)
    session = Session(group_id=body.group_id, started_by=user.id, status=SessionStatus.RECORDING)
    db.add(session)
    db.commit()
    return SessionStarted(session_id=session.id, status=session.status)


@router.post(
    "/{session_id}/upload",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "Same bytes already stored"},
        **errors(401, 404, 409, 413, 415),
    },
)
def upload_chunk(
    session_id: uuid.UUID,
    response: Response,
    db: DbDep,
    user: CurrentUser,
    storage: StorageDep,
    settings: SettingsDep,
    file: UploadFile = File(description="One chunk of the recording, any audio format"),
    chunk_number: int = Form(ge=0, description="0, 1, 2... in recording order"),
) -> ChunkStored:
    """Store one chunk. Idempotent: the same bytes again → 200; other bytes → 409."""
    if chunk_number > settings.max_chunk_number:
        raise AppError(
            f"chunk_number must be at most {settings.max_chunk_number}",
            code="chunk_number_out_of_range",
        )
    _require_recording(crud.session_for_member(db, session_id, user.id))
    _require_audio(file)
    size, digest = _measure(file.file, settings.max_upload_bytes)
    existing = crud.chunk_by_number(db, session_id, chunk_number)
    if existing is not None:
        return _same_or_conflict(existing, digest, response)
    key = chunk_key(session_id, chunk_number, digest)
    file.file.seek(0)
    storage.put(key, file.file, file.content_type)
    # Re-check under the session's row lock, which `end` also takes: no chunk slips in after.
    _require_recording(crud.session_for_member(db, session_id, user.id, for_update=True))
    db.add(
        AudioChunk(
            session_id=session_id,
            chunk_number=chunk_number,
            storage_key=key,
            sha256=digest,
            size_bytes=size,
            content_type=file.content_type,
        )
    )
    try:
        db.commit()
    except IntegrityError:
        db.rollback()  # a concurrent upload of the same chunk number won
        winner = crud.chunk_by_number(db, session_id, chunk_number)
        assert winner is not None
        if winner.storage_key != key:
            storage.delete(key)
        return _same_or_conflict(winner, digest, response)
    return ChunkStored(
        session_id=session_id, chunk_number=chunk_number, size_bytes=size, sha256=digest
    )


def _require_recording(session: Session) -> None:
    if session.status is not SessionStatus.RECORDING:
        raise Conflict(
            f"session is {session.status.value}, no longer recording", code="session_not_recording"
        )


def _require_audio(file: UploadFile) -> None:
    head = file.file.read(SNIFF_BYTES)
    file.file.seek(0)
    if not declared_type_acceptable(file.content_type):
        raise UnsupportedMedia(f"declared content type {file.content_type!r} is not audio")
    if sniff_audio_format(head) is None:
        raise UnsupportedMedia("the file is not in an audio format we recognise")


def _measure(stream: BinaryIO, limit: int) -> tuple[int, str]:
    """Size and sha256 of the stream, read in blocks; 413 once past ``limit`` bytes."""
    digest, size = hashlib.sha256(), 0
    while block := stream.read(_READ_BLOCK):
        size += len(block)
        if size > limit:
            raise PayloadTooLarge(f"chunk is larger than {limit} bytes")
        digest.update(block)
    return size, digest.hexdigest()


def _same_or_conflict(existing: AudioChunk, digest: str, response: Response) -> ChunkStored:
    if existing.sha256 != digest:
        raise Conflict(
            f"chunk {existing.chunk_number} was already uploaded with other bytes",
            code="chunk_conflict",
        )
    response.status_code = status.HTTP_200_OK
    return ChunkStored(
        session_id=existing.session_id,
        chunk_number=existing.chunk_number,
        size_bytes=existing.size_bytes,
        sha256=existing.sha256,
    )


@router.post(
    "/{session_id}/end", status_code=status.HTTP_202_ACCEPTED, responses=errors(401, 404, 409, 422)
)
def end_session(
    session_id: uuid.UUID,
    db: DbDep,
    user: CurrentUser,
    connection: RedisDep,
    settings: SettingsDep,
    body: SessionEnd | None = None,
) -> SessionEnded:
    """Stop recording and queue the session for processing. Ending again is a no-op."""
    session = crud.session_for_member(db, session_id, user.id, for_update=True)
    if session.status is not SessionStatus.RECORDING:
        return SessionEnded(status=session.status)
    chunks = crud.chunk_count(db, session_id)
    if chunks == 0:
        raise Conflict("no audio was uploaded for this session", code="no_audio")
    hints = body or SessionEnd()
    session.num_speakers, session.min_speakers, session.max_speakers = (
        hints.num_speakers,
        hints.min_speakers,
        hints.max_speakers,
    )
    session.webhook_url = str(hints.webhook_url) if hints.webhook_url else None
    session.status, session.progress, session.stage = SessionStatus.PROCESSING, 0, "queued"
    session.ended_at = datetime.now(UTC)
    db.commit()
    try:
        enqueue_processing(
            connection, settings, session_id, chunks * settings.expected_chunk_seconds
        )
    except RedisError:
        # The session is durably `processing` in Postgres; the reconciler enqueues it later.
        log.warning("enqueue failed for session %s; left to the reconciler", session_id)
    return SessionEnded(status=session.status)


@router.get("/{session_id}/status", responses=errors(401, 404))
def session_status(session_id: uuid.UUID, db: DbDep, user: CurrentUser) -> SessionStatusPublic:
    return _status_of(crud.session_for_member(db, session_id, user.id))


TERMINAL = (SessionStatus.READY_FOR_CLAIMING, SessionStatus.COMPLETED, SessionStatus.FAILED)


@router.get(
    "/{session_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **errors(401, 404)},
)
def session_events(
    session_id: uuid.UUID, db: DbDep, user: CurrentUser, resources: ResourcesDep
) -> StreamingResponse:
    """Server-sent events instead of polling: a ``status`` event (the body of ``/status``)
    whenever status, progress or stage changes, ending once the session is processed or failed."""
    crud.session_for_member(db, session_id, user.id)
    db.close()  # the stream reads with its own short sessions; hold no connection meanwhile
    return StreamingResponse(
        _status_events(resources, session_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _status_events(resources: ResourcesDep, session_id: uuid.UUID) -> AsyncIterator[str]:
    last: SessionStatusPublic | None = None
    quiet_since = time.monotonic()
    while True:
        current = await run_in_threadpool(_read_status, resources, session_id)
        if current != last:
            yield f"event: status\ndata: {current.model_dump_json()}\n\n"
            last, quiet_since = current, time.monotonic()
        if current.status in TERMINAL:
            return
        if time.monotonic() - quiet_since > 15:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(resources.settings.events_poll_interval_s)


def _read_status(resources: ResourcesDep, session_id: uuid.UUID) -> SessionStatusPublic:
    with resources.session_factory() as db:
        session = db.get(Session, session_id)
        if session is None:
            raise NotFound("session not found", code="session_not_found")
        return _status_of(session)


def _status_of(session: Session) -> SessionStatusPublic:
    return SessionStatusPublic(
        status=session.status,
        progress=session.progress,
        stage=session.stage,
        error_message=session.error_message,
        warnings=list(session.warnings or []),
    )


@router.get("/{session_id}/speakers", responses=errors(401, 404))
def list_speakers(
    session_id: uuid.UUID, db: DbDep, user: CurrentUser, storage: StorageDep, settings: SettingsDep
) -> SpeakersPublic:
    """The voices found, each with a playable sample clip (expiring URL) and its counts."""
    session = crud.session_for_member(db, session_id, user.id)
    speakers = session.speakers
    counts = crud.speaker_word_counts(db, [s.id for s in speakers])
    return SpeakersPublic(
        speakers=[
            SpeakerPublic(
                id=s.id,
                speaker_label=s.label,
                sample_audio_url=storage.url(s.sample_clip_key, settings.media_url_ttl_s)
                if s.sample_clip_key
                else None,
                total_duration_seconds=round(s.total_duration_s, 2),
                segment_count=s.segment_count,
                word_counts=counts.get(s.id, {}),
                dominant_emotion=s.dominant_emotion,
                claimed_by=s.claimed_by,
                claim_type=s.claim_type,
                guest_name=s.guest_name,
                claimed_at=s.claimed_at,
            )
            for s in speakers
        ]
    )


@router.get("/{session_id}/transcript", responses=errors(401, 404))
def transcript(session_id: uuid.UUID, db: DbDep, user: CurrentUser) -> TranscriptPublic:
    crud.session_for_member(db, session_id, user.id)
    rows = db.execute(
        select(Segment, SessionSpeaker.label)
        .join(SessionSpeaker, SessionSpeaker.id == Segment.speaker_id)
        .where(Segment.session_id == session_id)
        .order_by(Segment.start_s)
    )
    return TranscriptPublic(
        segments=[
            SegmentPublic(
                speaker_id=seg.speaker_id,
                speaker_label=label,
                start=seg.start_s,
                end=seg.end_s,
                text=seg.text,
                corrected_text=seg.corrected_text,
                emotion=seg.emotion,
                emotion_score=seg.emotion_score,
                emotion_scores=seg.emotion_scores or {},
            )
            for seg, label in rows
        ]
    )


@router.get("/{session_id}/occurrences", responses=errors(401, 404, 422))
def occurrences(
    session_id: uuid.UUID,
    db: DbDep,
    user: CurrentUser,
    storage: StorageDep,
    settings: SettingsDep,
    speaker_id: uuid.UUID | None = None,
    word: str | None = None,
) -> OccurrencesPublic:
    """Every counted target word in time order (optionally one speaker's, or one word's),
    with the evidence for it and a playable clip: the counts shown anywhere are these rows
    counted."""
    crud.session_for_member(db, session_id, user.id)
    query = (
        select(WordOccurrence, SessionSpeaker.label, Segment.text)
        .join(SessionSpeaker, SessionSpeaker.id == WordOccurrence.speaker_id)
        .outerjoin(Segment, Segment.id == WordOccurrence.segment_id)
        .where(WordOccurrence.session_id == session_id)
        .order_by(WordOccurrence.start_s, WordOccurrence.word)
    )
    if speaker_id is not None:
        query = query.where(WordOccurrence.speaker_id == speaker_id)
    if word is not None:
        query = query.where(WordOccurrence.word == word.lower())
    ttl = settings.media_url_ttl_s
    return OccurrencesPublic(
        occurrences=[
            OccurrencePublic(
                id=o.id,
                speaker_id=o.speaker_id,
                speaker_label=label,
                word=o.word,
                start=o.start_s,
                end=o.end_s,
                text=text,
                heard=o.heard,
                source=o.source,
                rule=o.rule,
                dictionary_version=o.dictionary_version,
                score=o.score,
                clip_url=storage.url(o.clip_key, ttl) if o.clip_key else None,
            )
            for o, label, text in db.execute(query)
        ]
    )


@router.post("/{session_id}/claim", responses=errors(401, 404, 409, 422))
def claim(session_id: uuid.UUID, body: ClaimRequest, db: DbDep, user: CurrentUser) -> ClaimResult:
    """Say which speaker was you (``self``) or a named guest. Each speaker is claimed once;
    a user claims at most one speaker per session as themselves."""
    # The session row lock serialises claims within a session, so the rules below hold
    # under concurrent requests.
    session = crud.session_for_member(db, session_id, user.id, for_update=True)
    if not crud.claimable(session):
        raise Conflict(
            f"session is {session.status.value}; nothing to claim yet", code="session_not_ready"
        )
    speaker = _speaker_of(db, session, body.speaker_id)
    claim_type = ClaimType(body.claim_type)
    if claim_type is ClaimType.SELF and crud.has_self_claim(db, session_id, user.id):
        raise Conflict("you already claimed a speaker in this session", code="already_claimed")
    if speaker.claimed_by is not None or not crud.claim_speaker(
        db, speaker, user.id, claim_type, body.guest_name
    ):
        raise Conflict("speaker already claimed", code="speaker_already_claimed")
    if crud.all_speakers_claimed(db, session_id):
        session.status = SessionStatus.COMPLETED
    db.commit()
    return ClaimResult(success=True)


@router.delete("/{session_id}/claim/{speaker_id}", responses=errors(401, 404, 409))
def unclaim(
    session_id: uuid.UUID, speaker_id: uuid.UUID, db: DbDep, user: CurrentUser
) -> ClaimResult:
    """Undo your own claim; the speaker's counts leave your totals."""
    session = crud.session_for_member(db, session_id, user.id, for_update=True)
    speaker = _speaker_of(db, session, speaker_id)
    if speaker.claimed_by != user.id:
        raise Conflict("only the claimer can undo a claim", code="not_your_claim")
    speaker.claimed_by = speaker.claimed_at = speaker.claim_type = None
    speaker.attributed_to_user_id = speaker.guest_name = None
    session.status = SessionStatus.READY_FOR_CLAIMING
    db.commit()
    return ClaimResult(success=True)


def _speaker_of(db: DbDep, session: Session, speaker_id: uuid.UUID) -> SessionSpeaker:
    speaker = db.get(SessionSpeaker, speaker_id)
    if speaker is None or speaker.session_id != session.id:
        raise NotFound("speaker not found", code="speaker_not_found")
    return speaker
