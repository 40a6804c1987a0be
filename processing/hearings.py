"""Live sessions' bookkeeping: a chunk job hears one chunk's stretch and stores what it heard;
the finish makes sure every chunk of the ended session has a valid hearing, then reads them all.

A hearing is a row of ``chunk_hearings`` (words and verdicts as JSON, the diarizer's window
embeddings as a small npz blob, ~80 KB a chunk), not an object in storage: it is written in the
same transaction as the session's chunk count (a status poll never shows a chunk heard that is
not stored), it is deleted with the session by the cascade that deletes everything else (no
object to forget), and the finish reads a 60-minute session's 120 hearings in one query.

Idempotent by (session, chunk number, sha256): a hearing is valid for the chunk's bytes, the
chunk before it (whose tail it carries, by number and sha256) and the models that heard it.
Every chunk is heard to its cut, the last one too (its chunk job cannot know it is the last);
the finish hears the last chunk's coda (from its cut to its end: a few seconds) each time it
runs, not stored, so a session's words never depend on whether its last chunk job ran before
or after ``end``. (Rows from before this rule may hold a last chunk heard to its end,
``final``: they stay valid for that chunk while it is the last, and need no coda.)
A retried upload, a duplicate delivery or a replayed job finds its hearing valid and changes
nothing. Two jobs never hear one chunk at once: each holds a Postgres advisory lock on
(session, chunk) while it hears; a chunk job that finds it taken leaves the chunk to the
holder, the finish waits for the holder (a killed worker's lock goes with its connection).
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

import lifecycle
from config import Settings
from models import AudioChunk, ChunkHearingRow, Session, SessionStatus
from processing.chunks import ChunkAudio, ChunkError
from processing.evidence import words_json
from processing.retrying import database_retry
from services.audio import AudioDecodeError, find_gaps
from services.diarization import Diarizer, RoomStats, SpanVoices
from services.domain import (
    SAMPLE_RATE,
    Audio,
    ProgressCallback,
    TranscriptSegment,
    Word,
    no_progress,
)
from services.hearing import (
    LOOKAHEAD_S,
    ChunkHearing,
    Stretch,
    coda_of,
    hear_stretch,
    stretch_of,
)
from services.singlish import Singlish
from services.singlish.verification import Verdict
from services.transcription import Transcriber
from storage import Storage

log = structlog.get_logger(__name__)

# How long the finish waits for a chunk job that is hearing one of its chunks (the job's own
# time; a killed job's lock is released at once)
WAIT_FOR_HEARING_S = 300


@dataclass(frozen=True)
class Ears:
    """The loaded stages a chunk job hears with (the worker's engines), and ``hearer``: who
    they are, so that a hearing made by other models or settings is made again."""

    transcriber: Transcriber
    singlish: Singlish
    diarizer: Diarizer
    hearer: str

    def hear(self, stretch: Stretch, room_before: RoomStats) -> ChunkHearing:
        return hear_stretch(
            stretch,
            transcriber=self.transcriber,
            singlish=self.singlish,
            diarizer=self.diarizer,
            room_before=room_before,
        )


def hearer_of(settings: Settings, singlish: Singlish) -> str:
    """The identity of what a hearing depends on: the recogniser and how it decodes (the
    stretch's lookahead too: it changes the words at a stretch's end), the verifier and the
    dictionary its verdicts follow (the diarizer's own name is on the voices). A stored
    hearing by another hearer is heard again."""
    asr = f"{settings.asr_backend}:{settings.asr_model or 'bundled:base'}"
    decoding = (
        f"beam={settings.asr_beam_size},lang={settings.asr_language},"
        f"hotwords={int(settings.singlish_hotwords)},verify={int(settings.singlish_verify)},"
        f"crosscheck={int(settings.singlish_cross_check)},lookahead={LOOKAHEAD_S:g}"
    )
    return f"{asr}|{decoding}|{singlish.corrections.version}"[:255]


class Outcome(StrEnum):
    HEARD = "heard"
    VALID = "valid"  # already heard, validly: nothing done
    WAITING = "waiting"  # the chunk before it is not uploaded yet
    BUSY = "busy"  # another job is hearing it
    UNDECODABLE = "undecodable"  # stored with the error
    GONE = "gone"  # no such chunk, or its session is deleted or done


@dataclass(frozen=True)
class _Chunk:
    number: int
    storage_key: str
    sha256: str


@dataclass(frozen=True)
class _Task:
    """What hearing one chunk needs to know of its session."""

    chunk: _Chunk
    previous: _Chunk | None
    last: bool  # the last chunk of an ended session
    room_before: RoomStats


def hear_chunk(
    factory: sessionmaker[DbSession],
    storage: Storage,
    ears: Ears,
    session_id: uuid.UUID,
    number: int,
    *,
    audio: ChunkAudio | None = None,
    wait: bool = False,
) -> Outcome:
    """Hear chunk ``number`` of the session and store it, unless a valid hearing is stored.

    While the session records, a chunk is heard after the chunk before it (n - 1) is uploaded
    (:data:`Outcome.WAITING` until then: that upload enqueues this chunk again); once it has
    ended, after the one before it among those uploaded. Each to its cut (the finish hears
    the last chunk's coda, :func:`hear_remaining`).
    ``wait``: wait for a job already hearing the chunk (the finish) instead of leaving it."""
    task = _task(factory, session_id, number, ears.hearer)
    if not isinstance(task, _Task):
        return task
    audio = audio or ChunkAudio(storage)
    with factory() as lock_db:  # the advisory lock lives as long as this transaction
        if wait:
            lock_db.execute(text(f"SET LOCAL lock_timeout = '{WAIT_FOR_HEARING_S}s'"))
            lock_db.execute(select(func.pg_advisory_xact_lock(*_lock_key(session_id, number))))
        elif not lock_db.scalar(
            select(func.pg_try_advisory_xact_lock(*_lock_key(session_id, number)))
        ):
            return Outcome.BUSY
        task = _task(factory, session_id, number, ears.hearer)  # heard meanwhile?
        if not isinstance(task, _Task):
            return task
        try:
            own = audio.get(task.chunk.storage_key)
        except AudioDecodeError as exc:
            _store(factory, session_id, task, ears.hearer, None, 0, error=str(exc))
            return Outcome.UNDECODABLE
        previous = _decoded_or_none(audio, task.previous)
        stretch = stretch_of(previous, own, final=False)
        hearing = ears.hear(stretch, task.room_before)
        stored = _store(factory, session_id, task, ears.hearer, hearing, len(own.samples))
        try:
            lock_db.rollback()  # lets the chunk go
        except SQLAlchemyError:  # the connection broke meanwhile: the lock went with it
            log.warning("hearing.lock_lost", session_id=str(session_id), chunk=number)
    return Outcome.HEARD if stored else Outcome.GONE


def _lock_key(session_id: uuid.UUID, number: int) -> tuple[int, int]:
    """Two int4 for pg_advisory_xact_lock: the session's, and the chunk number."""
    return zlib.crc32(session_id.bytes) - 2**31, number


def _decoded_or_none(audio: ChunkAudio, chunk: _Chunk | None) -> Audio | None:
    """The previous chunk's audio, or None: no chunk before, or one that cannot be decoded
    (it adds no audio to the session, so there is no tail to carry)."""
    if chunk is None:
        return None
    try:
        return audio.get(chunk.storage_key)
    except AudioDecodeError:
        return None


@database_retry
def _task(
    factory: sessionmaker[DbSession], session_id: uuid.UUID, number: int, hearer: str
) -> _Task | Outcome:
    with factory() as db:
        status = db.scalar(select(Session.status).where(Session.id == session_id))
        if status not in (SessionStatus.RECORDING, SessionStatus.PROCESSING):
            return Outcome.GONE
        chunks = [
            _Chunk(n, key, sha)
            for n, key, sha in db.execute(
                select(AudioChunk.chunk_number, AudioChunk.storage_key, AudioChunk.sha256)
                .where(AudioChunk.session_id == session_id)
                .order_by(AudioChunk.chunk_number)
            )
        ]
        numbers = [c.number for c in chunks]
        if number not in numbers:
            return Outcome.GONE
        i = numbers.index(number)
        ended = status is SessionStatus.PROCESSING
        if ended:
            previous = chunks[i - 1] if i > 0 else None
        elif number == 0:
            previous = None
        elif i > 0 and numbers[i - 1] == number - 1:
            previous = chunks[i - 1]
        else:
            return Outcome.WAITING
        last = ended and i == len(chunks) - 1
        # the columns validity and the room need, not the words and voices (a finish asks
        # this of every chunk of the session)
        rows = db.execute(select(*_HEADER).where(ChunkHearingRow.session_id == session_id)).all()
        task = _Task(chunks[i], previous, last, RoomStats())
        mine = next((r for r in rows if r.chunk_number == number), None)
        if mine is not None and _valid(mine, task, hearer):
            return Outcome.VALID
        room = sum((_room(r) for r in rows if r.chunk_number != number), RoomStats())
        return _Task(chunks[i], previous, last, room)


_HEADER = (
    ChunkHearingRow.chunk_number,
    ChunkHearingRow.chunk_sha256,
    ChunkHearingRow.previous_number,
    ChunkHearingRow.previous_sha256,
    ChunkHearingRow.hearer,
    ChunkHearingRow.final,
    ChunkHearingRow.error,
    ChunkHearingRow.room,
)


def _valid(row: Any, task: _Task, hearer: str) -> bool:
    """Whether ``row`` is the hearing ``task`` would make (an undecodable chunk's only needs
    the same bytes)."""
    if row.chunk_sha256 != task.chunk.sha256:
        return False
    if row.error is not None:
        return True
    previous = task.previous
    return (
        row.hearer == hearer
        and (not row.final or task.last)  # heard to its end: valid only as the last chunk
        and row.previous_number == (None if previous is None else previous.number)
        and row.previous_sha256 == (None if previous is None else previous.sha256)
    )


@database_retry
def _store(
    factory: sessionmaker[DbSession],
    session_id: uuid.UUID,
    task: _Task,
    hearer: str,
    hearing: ChunkHearing | None,
    samples: int,
    *,
    error: str | None = None,
) -> bool:
    """Write the chunk's hearing (replacing an invalid one) and the session's count of heard
    chunks in one transaction, the session's row locked first (as uploads and deletion lock
    it); False, writing nothing, when the session is deleted or no longer takes hearings."""
    with factory() as db:
        session = db.get(Session, session_id, with_for_update=True)
        if session is None or session.status not in (
            SessionStatus.RECORDING,
            SessionStatus.PROCESSING,
        ):
            return False
        values = {
            "chunk_sha256": task.chunk.sha256,
            "previous_number": None if task.previous is None else task.previous.number,
            "previous_sha256": None if task.previous is None else task.previous.sha256,
            "final": False,
            "hearer": hearer,
            "samples": samples,
            "error": None if error is None else error[:2000],
            **_columns(hearing),
        }
        db.execute(
            insert(ChunkHearingRow)
            .values(
                id=uuid.uuid4(), session_id=session_id, chunk_number=task.chunk.number, **values
            )
            .on_conflict_do_update(index_elements=["session_id", "chunk_number"], set_=values)
        )
        chunk = db.scalars(
            select(AudioChunk).where(
                AudioChunk.session_id == session_id,
                AudioChunk.chunk_number == task.chunk.number,
            )
        ).one_or_none()
        if chunk is not None:
            chunk.duration_s = samples / SAMPLE_RATE
        heard = db.scalar(select(func.count()).where(ChunkHearingRow.session_id == session_id)) or 0
        lifecycle.chunks_heard(session, heard=heard)
        db.commit()
    log.info(
        "hearing.stored",
        session_id=str(session_id),
        chunk=task.chunk.number,
        error=error,
    )
    return True


def _columns(hearing: ChunkHearing | None) -> dict[str, object]:
    if hearing is None:
        return {"start_s": 0.0, "end_s": 0.0, "segments": [], "verdicts": [], "room": {},
                "voices": None}  # fmt: skip
    return {
        "start_s": hearing.start,
        "end_s": hearing.end,
        "segments": [
            {"start": s.start, "end": s.end, "text": s.text, "words": words_json(s.words)}
            for s in hearing.segments
        ],
        "verdicts": [asdict(v) for v in hearing.verdicts],
        "room": asdict(hearing.room),
        "voices": None if hearing.voices is None else hearing.voices.to_bytes(),
    }


def _room(row: Any) -> RoomStats:
    return RoomStats(**row.room) if row.room else RoomStats()


def hearing_of(row: ChunkHearingRow) -> ChunkHearing:
    """The stored hearing as the services made it."""
    segments = tuple(
        TranscriptSegment(
            float(s["start"]),
            float(s["end"]),
            str(s["text"]),
            tuple(Word(float(a), float(b), str(t), float(p)) for a, b, t, p in s["words"]),
        )
        for s in row.segments
    )
    return ChunkHearing(
        start=row.start_s,
        end=row.end_s,
        segments=segments,
        verdicts=tuple(Verdict(**v) for v in row.verdicts),
        voices=None if row.voices is None else SpanVoices.from_bytes(row.voices),
        room=_room(row),
    )


# --- the finish ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionHearings:
    """Every chunk of an ended session heard: (session second the chunk starts, its hearing)
    for the chunks with audio, each chunk's storage key and decoded length (0: skipped), and
    the warnings (chunks missing or skipped)."""

    hearings: tuple[tuple[float, ChunkHearing], ...]
    lengths: tuple[tuple[str, int], ...]
    warnings: tuple[str, ...]

    @property
    def duration(self) -> float:
        return sum(n for _, n in self.lengths) / SAMPLE_RATE


def hear_remaining(
    factory: sessionmaker[DbSession],
    storage: Storage,
    ears: Ears,
    session_id: uuid.UUID,
    numbers: Sequence[int],
    *,
    skip_bad_chunks: bool,
    on_progress: ProgressCallback = no_progress,
) -> SessionHearings:
    """The finish's first step: hear each chunk of ``numbers`` (the ended session's, in
    order) that has no valid hearing (waiting for a chunk job already hearing one), then read
    them all. Raises :class:`~processing.chunks.ChunkError` for an undecodable chunk (unless
    skipped) or when no chunk could be decoded, with the batch path's messages."""
    audio = ChunkAudio(storage)
    for i, number in enumerate(numbers):
        outcome = hear_chunk(factory, storage, ears, session_id, number, audio=audio, wait=True)
        if outcome is Outcome.GONE:
            raise ChunkError(f"chunk {number} is gone: the session changed while it was heard")
        on_progress((i + 1) / len(numbers))
    heard, codas = _read(factory, session_id, numbers, skip_bad_chunks)
    return replace(heard, hearings=heard.hearings + _codas(codas, heard, audio, ears))


def _codas(
    codas: Sequence[tuple[float, str]], heard: SessionHearings, audio: ChunkAudio, ears: Ears
) -> tuple[tuple[float, ChunkHearing], ...]:
    """The codas of the chunks whose tail no stretch carries ((session second the chunk
    starts, its storage key): the last chunk, and one before an undecodable chunk), heard
    with the session's room. Not stored: a few seconds each, made again by every finish."""
    room = sum((h.room for _, h in heard.hearings), RoomStats())
    out = []
    for start, key in codas:
        stretch = coda_of(audio.get(key))
        if stretch is not None:
            out.append((start, ears.hear(stretch, room)))
    return tuple(out)


@database_retry
def _read(
    factory: sessionmaker[DbSession],
    session_id: uuid.UUID,
    numbers: Sequence[int],
    skip_bad_chunks: bool,
) -> tuple[SessionHearings, list[tuple[float, str]]]:
    """The stored hearings, and the chunks that need a coda (see :func:`_codas`)."""
    with factory() as db:
        rows = {
            r.chunk_number: r
            for r in db.scalars(
                select(ChunkHearingRow).where(ChunkHearingRow.session_id == session_id)
            )
        }
        keys = dict(
            db.execute(
                select(AudioChunk.chunk_number, AudioChunk.storage_key).where(
                    AudioChunk.session_id == session_id
                )
            ).all()
        )
        warnings = [f"chunk {n} is missing" for n in find_gaps(numbers)]
        hearings, lengths, codas, at = [], [], [], 0
        for i, number in enumerate(numbers):
            row = rows[number]
            if row.error is not None:
                if not skip_bad_chunks:
                    raise ChunkError(f"chunk {number} could not be decoded: {row.error}")
                warnings.append(f"chunk {number} skipped: could not be decoded")
                lengths.append((keys[number], 0))
                continue
            hearings.append((at / SAMPLE_RATE, hearing_of(row)))
            lengths.append((keys[number], row.samples))
            following = rows[numbers[i + 1]] if i + 1 < len(numbers) else None
            if not row.final and (following is None or following.error is not None):
                codas.append((at / SAMPLE_RATE, keys[number]))
            at += row.samples
    if at == 0:
        raise ChunkError("no chunk of this session could be decoded")
    return SessionHearings(tuple(hearings), tuple(lengths), tuple(warnings)), codas
