"""A session's life: start, upload chunks, end (enqueue), poll, read results, claim speakers."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, BinaryIO

import structlog
from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

import lifecycle
import voice_library
from backend import crud
from backend.audio_format import SNIFF_BYTES, declared_type_acceptable, sniff_audio_format
from backend.deps import (
    CurrentUser,
    CurrentUserId,
    DbDep,
    RedisDep,
    SettingsDep,
    StorageDep,
)
from backend.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMedia,
)
from backend.routes.occurrences import occurrence_public
from backend.routes.responses import errors
from backend.schemas import (
    ChunkStored,
    ClaimRequest,
    ClaimResult,
    Name,
    OccurrencesPublic,
    ProvisionalSegmentPublic,
    ProvisionalTranscriptPublic,
    SegmentPublic,
    SessionEnd,
    SessionEnded,
    SessionReprocess,
    SessionStart,
    SessionStarted,
    SessionStatusPublic,
    SpeakerPublic,
    SpeakersPublic,
    TranscriptPublic,
)
from backend.status import StatusReaderDep
from models import (
    AudioChunk,
    ClaimType,
    Segment,
    Session,
    SessionSpeaker,
    SessionStatus,
    WordOccurrence,
)
from queueing.jobs import (
    cancel_processing,
    enqueue_hearing,
    enqueue_processing,
    requeue_processing,
)
from queueing.status_cache import StatusSnapshot, forget_status
from queueing.webhooks import UnsafeWebhookTarget, require_https, vet_webhook_url
from storage import chunk_key, delete_session_objects

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/sessions", tags=["sessions"])
_READ_BLOCK = 1024 * 1024
# The upload's body, documented by hand: the route reads it itself (after authenticating).
UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "chunk_number"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "One chunk of the recording, any audio format",
                    },
                    "chunk_number": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "0, 1, 2... in recording order",
                    },
                },
            }
        }
    },
}


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
        200: {"model": ChunkStored, "description": "Same bytes already stored"},
        **errors(401, 404, 409, 413, 415, 422),
    },
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def upload_chunk(
    session_id: uuid.UUID,
    request: Request,
    response: Response,
    db: DbDep,
    user: CurrentUser,
    storage: StorageDep,
    settings: SettingsDep,
    connection: RedisDep,
) -> ChunkStored:
    """Store one chunk. Idempotent: the same bytes again → 200; other bytes → 409.

    The body is multipart (``file``, ``chunk_number``). It is read only after the caller is
    authenticated and the session is known to be theirs and still recording, so a stranger's
    upload costs no disk; its size is capped by the body limit as it streams in. Once stored
    (live sessions), the chunk's hearing is queued, and the next chunk's if it came first."""
    await run_in_threadpool(_check_can_upload, db, session_id, user.id)
    form = await _read_form(request)
    try:
        file, chunk_number = _chunk_fields(form, settings)
        stored = await run_in_threadpool(
            _store_chunk, db, storage, settings, session_id, user.id, chunk_number, file, response
        )
    finally:
        await form.close()
    if settings.live_processing and response.status_code != status.HTTP_200_OK:
        await run_in_threadpool(_enqueue_hearings, db, connection, settings, stored)
    return stored


def _enqueue_hearings(
    db: DbDep, connection: RedisDep, settings: SettingsDep, stored: ChunkStored
) -> None:
    """After the commit: hear the new chunk, and the one after it if it arrived first (it
    waited for this one's tail). A Redis error loses nothing: the reconciler enqueues later."""
    numbers = [stored.chunk_number]
    if crud.chunk_by_number(db, stored.session_id, stored.chunk_number + 1) is not None:
        numbers.append(stored.chunk_number + 1)
    db.rollback()
    try:
        for number in numbers:
            enqueue_hearing(connection, settings, stored.session_id, number)
    except RedisError:
        log.warning(
            "upload.enqueue_failed", session_id=str(stored.session_id), left_to="reconciler"
        )


def _check_can_upload(db: DbDep, session_id: uuid.UUID, user_id: uuid.UUID) -> None:
    _require_recording(crud.session_for_member(db, session_id, user_id))
    db.rollback()  # hold no transaction (nor connection) while the body streams in


async def _read_form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidRequest("body: expected multipart/form-data with `file` and `chunk_number`")
    try:
        return await request.form(max_files=1, max_fields=1, max_part_size=64)
    except StarletteHTTPException as exc:  # the form parser's 400 for malformed multipart
        raise InvalidRequest(f"body: {exc.detail}") from exc


def _chunk_fields(form: FormData, settings: SettingsDep) -> tuple[UploadFile, int]:
    file, number = form.get("file"), form.get("chunk_number")
    if not isinstance(file, UploadFile):
        raise InvalidRequest("body.file: a file part is required")
    if not isinstance(number, str) or not number.strip().isdigit() or not number.isascii():
        raise InvalidRequest("body.chunk_number: a whole number 0, 1, 2... is required")
    chunk_number = int(number)
    if chunk_number > settings.max_chunk_number:
        raise InvalidRequest(f"body.chunk_number: must be at most {settings.max_chunk_number}")
    return file, chunk_number


def _store_chunk(
    db: DbDep,
    storage: StorageDep,
    settings: SettingsDep,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    chunk_number: int,
    file: UploadFile,
    response: Response,
) -> ChunkStored:
    content_type = _audio_type(file)
    size, digest = _measure(file.file, settings.max_upload_bytes)
    # The session's row lock, which `end` also takes, is held from the check to the commit:
    # no chunk slips in after `end`, and an upload refused for that never reaches storage.
    session = crud.session_for_member(db, session_id, user_id, for_update=True)
    _require_recording(session)
    existing = crud.chunk_by_number(db, session_id, chunk_number)
    if existing is not None:
        return _same_or_conflict(existing, digest, response)
    key = chunk_key(session_id, chunk_number, digest)
    file.file.seek(0)
    storage.put(key, file.file, content_type)
    lifecycle.chunk_uploaded(session)
    chunk = AudioChunk(
        session_id=session_id,
        chunk_number=chunk_number,
        storage_key=key,
        sha256=digest,
        size_bytes=size,
        content_type=content_type,
    )
    try:
        db.add(chunk)
        db.commit()
    except BaseException:
        db.rollback()
        _forget_unreferenced(db, storage, key)
        raise
    return ChunkStored(
        session_id=session_id, chunk_number=chunk_number, size_bytes=size, sha256=digest
    )


def _forget_unreferenced(db: DbDep, storage: StorageDep, key: str) -> None:
    """After a failed commit: delete the object unless a row does reference it (a commit can
    succeed and still fail to answer). If even that cannot be read, the sweeper decides later."""
    try:
        referenced = crud.chunk_key_referenced(db, key)
        db.rollback()
    except SQLAlchemyError:
        log.warning("upload.object_left_to_sweeper", key=key)
        return
    if not referenced:
        storage.delete(key)


def _require_recording(session: Session) -> None:
    if session.status is not SessionStatus.RECORDING:
        raise Conflict(
            f"session is {session.status.value}, no longer recording", code="session_not_recording"
        )


def _audio_type(file: UploadFile) -> str | None:
    """The part's declared media type, normalised (``audio/mp4``), after checking that the
    bytes are audio."""
    declared = (file.content_type or "").split(";")[0].strip().lower()
    if len(declared) > 100 or not declared.isprintable():
        raise InvalidRequest("body.file: the part's content type is not a media type")
    head = file.file.read(SNIFF_BYTES)
    file.file.seek(0)
    if not declared_type_acceptable(declared):
        raise UnsupportedMedia(f"declared content type {declared!r} is not audio")
    if sniff_audio_format(head) is None:
        raise UnsupportedMedia("the file is not in an audio format we recognise")
    return declared or None


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
    webhook_url = str(hints.webhook_url) if hints.webhook_url else None
    if webhook_url is not None:
        _vet_webhook(webhook_url, settings)
    lifecycle.end_recording(
        session,
        num_speakers=hints.num_speakers,
        min_speakers=hints.min_speakers,
        max_speakers=hints.max_speakers,
        webhook_url=webhook_url,
        now=datetime.now(UTC),
    )
    db.commit()
    try:
        enqueue_processing(
            connection, settings, session_id, chunks * settings.expected_chunk_seconds
        )
    except RedisError:
        # The session is durably `processing` in Postgres; the reconciler enqueues it later.
        log.warning("session.enqueue_failed", session_id=str(session_id), left_to="reconciler")
    return SessionEnded(status=session.status)


@router.post(
    "/{session_id}/reprocess",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(401, 404, 409, 422),
)
def reprocess_session(
    session_id: uuid.UUID,
    db: DbDep,
    user: CurrentUser,
    connection: RedisDep,
    settings: SettingsDep,
    body: SessionReprocess | None = None,
) -> SessionEnded:
    """Process a processed (or failed) session again with other speaker-count hints: the
    usual fix for speakers split or merged. A live session's words are kept (its chunks are
    not heard again), so this takes seconds. Claims on speakers still in the same place are
    kept; the others are released, and the status's ``warnings`` say which."""
    session = crud.session_for_member(db, session_id, user.id, for_update=True)
    if session.status in (SessionStatus.RECORDING, SessionStatus.PROCESSING):
        raise Conflict(
            f"session is {session.status.value}; nothing to process again yet",
            code="session_not_processed",
        )
    if crud.chunk_count(db, session_id) == 0:
        raise Conflict(
            "its recording was deleted (audio retention); it cannot be processed again",
            code="no_audio",
        )
    hints = body or SessionReprocess()
    session.num_speakers, session.min_speakers, session.max_speakers = (
        hints.num_speakers,
        hints.min_speakers,
        hints.max_speakers,
    )
    lifecycle.reset(session)
    duration = session.duration_s or 0.0
    db.commit()
    try:
        requeue_processing(connection, settings, session_id, duration)
    except RedisError:
        log.warning("session.enqueue_failed", session_id=str(session_id), left_to="reconciler")
    return SessionEnded(status=session.status)


def _vet_webhook(url: str, settings: SettingsDep) -> None:
    try:
        vet_webhook_url(
            url,
            allow_private=settings.webhook_allow_private_networks,
            require_https=require_https(settings),
        )
    except UnsafeWebhookTarget as exc:
        raise InvalidRequest(f"body.webhook_url: {exc}") from exc


@router.get(
    "/{session_id}/status",
    response_model=SessionStatusPublic,
    responses={
        304: {"description": "Not modified: still the status of the `If-None-Match` ETag"},
        **errors(401, 404),
    },
)
async def session_status(
    session_id: uuid.UUID,
    user_id: CurrentUserId,
    reader: StatusReaderDep,
    if_none_match: Annotated[str | None, Header(max_length=1000)] = None,
) -> Response:
    """The session's status and progress, with an ``ETag``. Poll with the last ``ETag`` as
    ``If-None-Match``: 304 (no body) while nothing changed, and never a status older than
    the one that ETag named."""
    seen = _seen_version(session_id, if_none_match)
    snapshot = await reader.poll(session_id, user_id, seen)
    headers = {"ETag": _etag(snapshot), "Cache-Control": "no-cache"}
    if seen == snapshot.version:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(snapshot.body, media_type="application/json", headers=headers)


def _etag(snapshot: StatusSnapshot) -> str:
    return f'"{snapshot.session_id.hex}.{snapshot.version}"'


def _seen_version(session_id: uuid.UUID, if_none_match: str | None) -> int | None:
    """The newest version of this session among the ETags of ``If-None-Match``; anything
    else in it (other sessions' ETags, garbage) is ignored."""
    versions = []
    for tag in (if_none_match or "").split(","):
        session_hex, _, version = tag.strip().removeprefix("W/").strip('"').partition(".")
        if session_hex == session_id.hex and version.isdigit() and version.isascii():
            versions.append(int(version))
    return max(versions, default=None)


TERMINAL = (SessionStatus.READY_FOR_CLAIMING, SessionStatus.COMPLETED, SessionStatus.FAILED)
KEEP_ALIVE_S = 15.0  # a comment line on a quiet stream, so proxies keep it open


@router.get(
    "/{session_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **errors(401, 404)},
)
async def session_events(
    session_id: uuid.UUID, user_id: CurrentUserId, reader: StatusReaderDep
) -> StreamingResponse:
    """Server-sent events instead of polling: a ``status`` event (the body of ``/status``)
    whenever status, progress or stage changes, ending once the session is processed or
    failed; while a live session records, a ``transcript`` event after each status whose
    ``chunks_heard`` moved, with the segments heard since the last one (the body of
    ``/transcript/provisional``, new segments only)."""
    # Authorised as a poll is (404 unless a member), in one short database read at most: a
    # stream never holds a connection, and many opening at once cannot exhaust the pool.
    await reader.poll(session_id, user_id, None)
    return StreamingResponse(
        _status_events(reader, session_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _status_events(reader: StatusReaderDep, session_id: uuid.UUID) -> AsyncIterator[str]:
    heard, told = 0, 0  # chunks heard, segments of the provisional transcript already sent
    async for snapshot in reader.follow(session_id, quiet_s=KEEP_ALIVE_S):
        if snapshot is None:
            yield ": keep-alive\n\n"
            continue
        yield f"event: status\ndata: {snapshot.body.decode()}\n\n"
        if snapshot.status in TERMINAL:
            return
        if snapshot.chunks_heard > heard:
            try:
                so_far = await reader.heard_so_far(session_id, snapshot.chunks_heard)
            except SQLAlchemyError as exc:  # a database blip: the next chunk heard retries
                log.warning("events.transcript_read_failed", error=str(exc))
                continue
            heard, new, told = so_far.chunks, so_far.segments[told:], len(so_far.segments)
            if new:
                body = _provisional(so_far.chunks, new).model_dump_json()
                yield f"event: transcript\ndata: {body}\n\n"


def _provisional(
    chunks_heard: int, segments: list[tuple[float, float, str]]
) -> ProvisionalTranscriptPublic:
    return ProvisionalTranscriptPublic(
        chunks_heard=chunks_heard,
        segments=[ProvisionalSegmentPublic(start=a, end=b, text=t) for a, b, t in segments],
    )


@router.get("/{session_id}/speakers", responses=errors(401, 404))
def list_speakers(
    session_id: uuid.UUID, db: DbDep, user: CurrentUser, storage: StorageDep, settings: SettingsDep
) -> SpeakersPublic:
    """The voices found, each with a playable sample clip (expiring URL) and its counts."""
    session = crud.session_for_member(db, session_id, user.id)
    speakers = session.speakers
    counts = crud.speaker_word_counts(db, [s.id for s in speakers])
    suggested = crud.suggestions(db, session)
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
                **_suggestion_fields(suggested.get(s.id)),
            )
            for s in speakers
        ]
    )


def _suggestion_fields(suggested: crud.Suggested | None) -> dict[str, Any]:
    if suggested is None:
        return {}
    return {
        "suggested_user_id": suggested.user_id,
        "suggested_display_name": suggested.display_name,
        "suggestion_confidence": round(suggested.score, 3),
        "auto_claimed": suggested.auto_claimed,
    }


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


@router.get("/{session_id}/transcript/provisional", responses=errors(401, 404))
def provisional_transcript(
    session_id: uuid.UUID, db: DbDep, user: CurrentUser
) -> ProvisionalTranscriptPublic:
    """While a live session records: the words its chunk jobs have heard so far, in order,
    without speakers (poll it when the status's ``chunks_heard`` moves). Empty for a
    session processed in one piece (``LIVE_PROCESSING=false``)."""
    crud.session_for_member(db, session_id, user.id)
    heard = crud.heard_so_far(db, session_id)
    return _provisional(heard.chunks, heard.segments)


@router.get("/{session_id}/occurrences", responses=errors(401, 404, 422))
def occurrences(
    session_id: uuid.UUID,
    db: DbDep,
    user: CurrentUser,
    storage: StorageDep,
    settings: SettingsDep,
    speaker_id: uuid.UUID | None = None,
    word: Annotated[Name | None, Query(max_length=40)] = None,
    counted: bool | None = None,
) -> OccurrencesPublic:
    """Every target word heard, in time order (optionally one speaker's, one word's, or only
    the counted or uncounted ones), with the evidence for it, a playable clip, its
    ``confidence`` and whether it is ``counted`` (and any member's decision on it): the
    counts shown anywhere are the counted rows."""
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
    if counted is not None:  # false: the possible and the disputed ones
        query = query.where(WordOccurrence.counted.is_(counted))
    ttl = settings.media_url_ttl_s
    return OccurrencesPublic(
        occurrences=[
            occurrence_public(o, label, text, storage, ttl) for o, label, text in db.execute(query)
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
    if body.remember_voice is not None:
        crud.set_remember_voice(db, user, body.remember_voice)
    if claim_type is ClaimType.SELF and crud.has_self_claim(db, session_id, user.id):
        raise Conflict("you already claimed a speaker in this session", code="already_claimed")
    if speaker.claimed_by is not None or not crud.claim_speaker(
        db, speaker, user.id, claim_type, body.guest_name
    ):
        raise Conflict("speaker already claimed", code="speaker_already_claimed")
    remembered = claim_type is ClaimType.SELF and bool(user.remember_voice)
    if remembered:
        voice_library.remember_claim(db, speaker.id, session_id, user.id)
    lifecycle.claimed(session, unclaimed_left=crud.unclaimed_speakers(db, session_id))
    db.commit()
    return ClaimResult(
        success=True,
        remember_voice=user.remember_voice,
        voiceprint_updated=remembered and crud.has_voice(db, speaker.id),
    )


@router.delete("/{session_id}/claim/{speaker_id}", responses=errors(401, 404, 409))
def unclaim(
    session_id: uuid.UUID, speaker_id: uuid.UUID, db: DbDep, user: CurrentUser
) -> ClaimResult:
    """Undo your own claim; the speaker's counts leave your totals."""
    session = crud.session_for_member(db, session_id, user.id, for_update=True)
    speaker = _speaker_of(db, session, speaker_id)
    if speaker.claimed_by != user.id:
        raise Conflict("only the claimer can undo a claim", code="not_your_claim")
    crud.release_claim(db, speaker)
    lifecycle.unclaimed(session)
    db.commit()
    return ClaimResult(success=True)


def _speaker_of(db: DbDep, session: Session, speaker_id: uuid.UUID) -> SessionSpeaker:
    speaker = db.get(SessionSpeaker, speaker_id)
    if speaker is None or speaker.session_id != session.id:
        raise NotFound("speaker not found", code="speaker_not_found")
    return speaker


@router.delete(
    "/{session_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 403, 404)
)
def delete_session(
    session_id: uuid.UUID,
    db: DbDep,
    user: CurrentUser,
    storage: StorageDep,
    connection: RedisDep,
) -> Response:
    """Delete the session and everything made from it: chunks, clips, evidence clips,
    transcript, speakers, occurrences, and its share of any voiceprint; the leaderboard no
    longer counts it. Only whoever started it or a group admin may. Idempotent (a session
    already gone answers 204). A session being processed is deleted all the same, then its
    job is cancelled (queued) or stopped (running); one that slips through finds the session
    gone and writes nothing more (it removes any clip it had stored)."""
    session = crud.session_to_delete(db, session_id, user.id)
    processing = session is not None and session.status is SessionStatus.PROCESSING
    if session is not None:
        voice_library.forget_session(db, session_id)
        crud.delete_session(db, session_id)
        db.commit()
        log.info("session.deleted", session_id=str(session_id), by=str(user.id))
    if processing:
        _stop_job(connection, session_id)
    deleted = delete_session_objects(storage, session_id)
    forget_status(connection, session_id)
    if deleted:
        log.info("session.objects_deleted", session_id=str(session_id), objects=len(deleted))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _stop_job(connection: RedisDep, session_id: uuid.UUID) -> None:
    """After the commit: cancel or stop the deleted session's job. Redis being down loses
    nothing: the job then finds the session gone before it writes its results."""
    try:
        found = cancel_processing(connection, session_id)
    except RedisError as exc:
        log.warning("session.job_not_stopped", session_id=str(session_id), error=str(exc))
    else:
        log.info("session.job_stopped", session_id=str(session_id), found=found)
