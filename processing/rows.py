"""The job's reads and writes of the session's rows, each in its own transaction.

Every write after :func:`take` is fenced by the attempt number it handed out: if the session
was taken again meanwhile (a re-enqueue after a lost worker), the stale attempt writes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

import lifecycle
import voice_library
from lifecycle import Notice, Stage
from models import (
    AudioChunk,
    Segment,
    Session,
    SessionSpeaker,
    SessionStatus,
    SpeakerVoiceRow,
    WordOccurrence,
)
from processing.claims import carry_claims, held_claims
from processing.clips import Clips
from processing.evidence import (
    carry_decisions,
    decisions_of,
    group_feedback_of,
    occurrence_rows,
    verdicts_json,
    words_json,
)
from processing.retrying import database_retry
from processing.suggestions import Matching, refresh_suggestions
from services.analysis import SessionAnalysis
from services.domain import Emotion, SpeakerHints, SpeakerTurn, SpeakerVoice
from services.singlish.confidence import Rating

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ChunkRef:
    number: int
    storage_key: str
    content_type: str | None


@dataclass(frozen=True)
class Heard:
    """What the stages made of a session's audio, before anything is stored."""

    analysis: SessionAnalysis
    turns: tuple[SpeakerTurn, ...]
    warnings: tuple[str, ...] = ()  # what the stages doubt about their own result
    voices: tuple[SpeakerVoice, ...] = ()  # each speaker's voice, per embedder that heard it


@dataclass(frozen=True)
class Outcome:
    """What a finished attempt leaves behind."""

    heard: Heard
    clips: Clips  # already in storage
    duration_s: float
    warnings: list[str]
    processing_time_s: float
    corrections_version: str
    rating: Rating = field(default_factory=Rating)  # the group's feedback is added at saving
    # how to suggest claims from the voices heard; None: no suggestions (voiceprints off)
    matching: Matching | None = None


# Somebody was heard, long enough to be a speaker, but no word of theirs was recognised.
NO_WORDS_WARNING = "no speech was recognised in this session"


@dataclass(frozen=True)
class Attempt:
    """One try at processing a session (``number`` fences every write it makes), with what
    it needs to read: the speaker-count hints and the chunks in order."""

    session_id: uuid.UUID
    number: int
    hints: SpeakerHints
    chunks: tuple[ChunkRef, ...]


@database_retry
def take(
    session_factory: sessionmaker[DbSession],
    session_id: uuid.UUID,
    lease: timedelta,
    max_attempts: int,
) -> Attempt | Notice | None:
    """Start an attempt on a ``processing`` session: count it, take the lease, and read what
    the attempt needs. A :class:`~lifecycle.Notice` when the session used up its attempts and was
    failed instead (the caller notifies); None when the session is not waiting for processing
    (done, failed, gone) or another worker holds a live lease on it."""
    now = datetime.now(UTC)
    with session_factory() as db:
        # A live lease means another worker is on it (a duplicate delivery): leave it alone.
        session = db.scalars(
            select(Session)
            .where(
                Session.id == session_id,
                Session.status == SessionStatus.PROCESSING,
                or_(Session.lease_expires_at.is_(None), Session.lease_expires_at < now),
            )
            .with_for_update()
        ).one_or_none()
        if session is None:
            return None
        if session.attempts >= max_attempts:
            notice = lifecycle.give_up(session)
            db.commit()
            return notice
        lifecycle.take(session, lease=lease, now=now)
        chunks = db.scalars(
            select(AudioChunk)
            .where(AudioChunk.session_id == session_id)
            .order_by(AudioChunk.chunk_number)
        )
        attempt = Attempt(
            session_id=session_id,
            number=session.attempts,
            hints=SpeakerHints(session.num_speakers, session.min_speakers, session.max_speakers),
            chunks=tuple(ChunkRef(c.chunk_number, c.storage_key, c.content_type) for c in chunks),
        )
        db.commit()
    return attempt


def _own(db: DbSession, attempt: Attempt) -> Session | None:
    """The session row, locked, if this attempt still owns it."""
    session = db.scalars(
        select(Session).where(Session.id == attempt.session_id).with_for_update()
    ).one_or_none()
    if session is None or session.status is not SessionStatus.PROCESSING:
        return None
    if session.attempts != attempt.number:
        return None
    return session


@dataclass(frozen=True)
class Saved:
    notice: Notice
    # evidence clips the replaced results used and the new ones do not (the caller deletes)
    stale_clips: set[str]


@database_retry
def save(
    session_factory: sessionmaker[DbSession],
    attempt: Attempt,
    outcome: Outcome,
) -> Saved | None:
    """Replace the session's results with the outcome's in one transaction and mark it ready
    for claiming (:func:`lifecycle.mark_ready`: completed when nobody was heard). Running a
    session twice therefore never doubles a count; members' decisions go to the same words
    heard again. None (and nothing written) when this attempt no longer owns the session."""
    with session_factory() as db:
        session = _own(db, attempt)
        if session is None:
            log.warning(
                "processor.results_dropped", attempt=attempt.number, reason="lost ownership"
            )
            return None
        previous = db.scalars(
            select(WordOccurrence.clip_key).where(WordOccurrence.session_id == attempt.session_id)
        )
        stale = {key for key in previous if key} - set(outcome.clips.evidence.values())
        # read before the old rows go: a reprocessed session's own judgements still count,
        # and its members' decisions go to the same words heard again
        rating = replace(outcome.rating, feedback=group_feedback_of(db, session.group_id))
        decisions = decisions_of(db, attempt.session_id)
        claims = held_claims(db, attempt.session_id)  # a session processed again keeps them
        db.execute(delete(SessionSpeaker).where(SessionSpeaker.session_id == attempt.session_id))
        speakers, rows = _insert_results(
            db, attempt.session_id, outcome.heard, outcome.clips, rating
        )
        if decisions:
            db.flush()
            carry_decisions(db, decisions, rows)
        released = (
            carry_claims(db, attempt.session_id, claims, speakers, _spans(outcome.heard))
            if claims
            else []
        )
        session.duration_s, session.processing_time_s = (
            outcome.duration_s,
            outcome.processing_time_s,
        )
        session.corrections_version = outcome.corrections_version
        analysis = outcome.heard.analysis
        warnings = [*outcome.warnings, *released]
        if analysis.speakers and not analysis.segments:
            warnings.append(NO_WORDS_WARNING)
        notice = lifecycle.mark_ready(
            session, speakers=len(analysis.speakers), warnings=warnings, now=datetime.now(UTC)
        )
        if len(claims) > len(released):
            lifecycle.claimed(
                session, unclaimed_left=sum(s.claimed_by is None for s in speakers.values())
            )
        if outcome.matching is not None:
            db.flush()
            refresh_suggestions(db, session, outcome.matching)
        db.commit()
    return Saved(notice, stale)


def _spans(heard: Heard) -> dict[str, list[tuple[float, float]]]:
    """Each speaker's segment spans (where their words are)."""
    spans: dict[str, list[tuple[float, float]]] = {s.label: [] for s in heard.analysis.speakers}
    for segment in heard.analysis.segments:
        spans.setdefault(segment.speaker, []).append((segment.start, segment.end))
    return spans


def _insert_results(
    db: DbSession, session_id: uuid.UUID, heard: Heard, clips: Clips, rating: Rating
) -> tuple[dict[str, SessionSpeaker], list[WordOccurrence]]:
    """Add the speakers, segments and occurrence rows of ``heard``; returns the speakers by
    label and the occurrences."""
    # Keys are made here, not at flush, so the whole result goes in one flush (insert order
    # follows the foreign keys).
    speakers = [
        SessionSpeaker(
            id=uuid.uuid4(),
            session_id=session_id,
            label=summary.label,
            segment_count=summary.segment_count,
            total_duration_s=summary.talk_time_s,
            dominant_emotion=summary.dominant_emotion,
            sample_clip_key=clips.samples.get(summary.label),
        )
        for summary in heard.analysis.speakers
    ]
    db.add_all(speakers)
    speaker_ids = {s.label: s.id for s in speakers}
    occurrences: list[WordOccurrence] = []
    db.flush()  # voices have no ORM relationship to order their insert after the speakers'
    db.add_all(
        SpeakerVoiceRow(
            speaker_id=speaker_ids[v.speaker],
            embedder=v.embedder,
            session_id=session_id,
            embedding=list(v.embedding),
            seconds=v.seconds,
            heard_from=v.heard_from or None,
        )
        for v in heard.voices
        if v.speaker in speaker_ids
    )
    for s in heard.analysis.segments:
        segment = Segment(
            id=uuid.uuid4(),
            session_id=session_id,
            speaker_id=speaker_ids[s.speaker],
            start_s=s.start,
            end_s=s.end,
            text=s.text,
            corrected_text=s.corrected_text,
            emotion=s.emotion.label,
            emotion_score=s.emotion.score,
            emotion_scores=dict(s.emotion.scores),
            words=words_json(s.words),
            verdicts=verdicts_json(s.verdicts),
        )
        db.add(segment)
        found = occurrence_rows(
            s.occurrences, session_id, speaker_ids, segment.id, clips.evidence, rating
        )
        db.add_all(found)
        occurrences.extend(found)
    return {s.label: s for s in speakers}, occurrences


@database_retry
def heard_voices(
    session_factory: sessionmaker[DbSession], session_id: uuid.UUID, embedder: str
) -> dict[str, SpeakerVoice]:
    """The voices in ``embedder``'s space the session's last results gave, by what each was
    heard from (a reprocess gives a speaker with the same speech the same voice without the
    model)."""
    with session_factory() as db:
        rows = db.execute(
            select(
                SpeakerVoiceRow.embedding, SpeakerVoiceRow.seconds, SpeakerVoiceRow.heard_from
            ).where(
                SpeakerVoiceRow.session_id == session_id,
                SpeakerVoiceRow.embedder == embedder,
                SpeakerVoiceRow.heard_from.is_not(None),
            )
        ).all()
    return {
        source: SpeakerVoice("", tuple(embedding), embedder, seconds, source)
        for embedding, seconds, source in rows
        if source is not None
    }


@database_retry
def text_emotions(
    session_factory: sessionmaker[DbSession], session_id: uuid.UUID
) -> dict[str, Emotion]:
    """The emotion the session's last results gave each segment's text (a reprocess gives the
    same texts the same emotions without running the model again)."""
    with session_factory() as db:
        rows = db.execute(
            select(
                Segment.text, Segment.emotion, Segment.emotion_score, Segment.emotion_scores
            ).where(Segment.session_id == session_id, Segment.emotion.is_not(None))
        ).all()
    return {
        text: Emotion(label, float(score or 0.0), dict(scores or {}))
        for text, label, score, scores in rows
        if label is not None
    }


@database_retry
def group_voiceprints(
    session_factory: sessionmaker[DbSession], session_id: uuid.UUID, embedder: str
) -> dict[uuid.UUID, list[float]]:
    """The voiceprints in ``embedder``'s space of the members of the session's group."""
    with session_factory() as db:
        group_id = db.scalar(select(Session.group_id).where(Session.id == session_id))
        if group_id is None:
            return {}
        return voice_library.group_voiceprints(db, group_id, embedder)


@database_retry
def evidence_clips(session_factory: sessionmaker[DbSession], session_id: uuid.UUID) -> set[str]:
    """The evidence clips the session's results point at (a reprocess keeps those it needs)."""
    with session_factory() as db:
        keys = db.scalars(
            select(WordOccurrence.clip_key).where(
                WordOccurrence.session_id == session_id, WordOccurrence.clip_key.is_not(None)
            )
        )
        return {key for key in keys if key}


@database_retry
def gone(session_factory: sessionmaker[DbSession], session_id: uuid.UUID) -> bool:
    """Whether the session's row was deleted (``DELETE /sessions/{id}``)."""
    with session_factory() as db:
        return db.get(Session, session_id) is None


def release(session_factory: sessionmaker[DbSession], attempt: Attempt) -> None:
    """Give the session back after a transient failure (:func:`lifecycle.release`). Best
    effort: the database may be what is down, and then the lease simply runs out."""
    try:
        with session_factory() as db:
            session = _own(db, attempt)
            if session is not None:
                lifecycle.release(session)
                db.commit()
    except SQLAlchemyError as exc:
        log.warning("processor.release_failed", error=str(exc))


@database_retry
def fail(
    session_factory: sessionmaker[DbSession], attempt: Attempt, stage: Stage, exc: Exception
) -> Notice | None:
    """Mark the session failed with a message naming the stage; None when this attempt no
    longer owns it. The caller notifies, then re-raises so the queue keeps the traceback."""
    with session_factory() as db:
        session = _own(db, attempt)
        if session is None:
            return None
        notice = lifecycle.fail(session, f"{stage.value} failed: {exc}")
        db.commit()
    return notice
