"""The database schema (SQLAlchemy 2 typed ORM). UUID keys; timestamps are UTC-aware.

Alembic migrations in ``migrations/`` must match these classes exactly (a test runs
autogenerate against a migrated database and expects no difference).
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy import true as sa_true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false

# Deterministic constraint names, so migrations can drop them on every database (SQLite too).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SessionStatus(enum.StrEnum):
    RECORDING = "recording"
    PROCESSING = "processing"
    READY_FOR_CLAIMING = "ready_for_claiming"
    COMPLETED = "completed"
    FAILED = "failed"


class ClaimType(enum.StrEnum):
    SELF = "self"
    GUEST = "guest"


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    """A VARCHAR + CHECK enum storing the values, identical on Postgres and SQLite."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
    )


class Profile(Base):
    """A user; ``id`` is the ``sub`` of their Supabase JWT."""

    __tablename__ = "profiles"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # may a voiceprint be kept from this user's self-claims? None: never asked (no voiceprint)
    remember_voice: Mapped[bool | None] = mapped_column(Boolean)


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(120))
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("profiles.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # claim a speaker for a member at once when their voiceprint matches above the stricter
    # threshold (VOICEPRINT_AUTO_CLAIM_SCORE); off unless an admin turns it on
    auto_claim_voices: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    members: Mapped[list[GroupMember]] = relationship(back_populates="group")


class GroupMember(Base):
    """A user in a group. ``display_name`` shows the user's own profile name, else the
    nickname the member who added them gave."""

    __tablename__ = "group_members"

    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("profiles.id"), primary_key=True)
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # what the member who added them calls them in this group; their own profile name wins
    nickname: Mapped[str | None] = mapped_column(String(120))
    # "admin" (the creator; may delete any session of the group) or "member"
    role: Mapped[str] = mapped_column(String(16), default="member", server_default="member")

    group: Mapped[Group] = relationship(back_populates="members")
    profile: Mapped[Profile] = relationship()

    @property
    def display_name(self) -> str | None:
        return self.profile.display_name or self.nickname


class Session(Base):
    """One recorded conversation of a group, from first chunk to claimed results."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_status_lease", "status", "lease_expires_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    started_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("profiles.id"))
    status: Mapped[SessionStatus] = mapped_column(
        _enum(SessionStatus, "session_status"), default=SessionStatus.RECORDING
    )
    progress: Mapped[int] = mapped_column(Integer, default=0)
    stage: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[list[str]] = mapped_column(JsonType, default=list)
    # bumped by every change of what a status poll shows (status, progress, stage,
    # error_message, warnings): the status cache's order and the poll's ETag
    status_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    num_speakers: Mapped[int | None] = mapped_column(Integer)
    min_speakers: Mapped[int | None] = mapped_column(Integer)
    max_speakers: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    audio_key: Mapped[str | None] = mapped_column(String(255))
    corrections_version: Mapped[str | None] = mapped_column(String(64))
    # POSTed (signed) when the session becomes ready or fails; given at `end`
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The worker holding the session renews this lease while it works; the reconciler
    # re-enqueues a ``processing`` session whose lease ran out.
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    processing_time_s: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # live sessions: chunks stored, and chunks whose hearing is stored (status polls show both)
    chunks_uploaded: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    chunks_heard: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    chunks: Mapped[list[AudioChunk]] = relationship(
        back_populates="session", order_by="AudioChunk.chunk_number"
    )
    speakers: Mapped[list[SessionSpeaker]] = relationship(
        back_populates="session", order_by="SessionSpeaker.label"
    )


class AudioChunk(Base):
    """One uploaded piece (~30 s) of a session's recording, stored as the phone made it."""

    __tablename__ = "audio_chunks"
    __table_args__ = (UniqueConstraint("session_id", "chunk_number"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    chunk_number: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    duration_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    session: Mapped[Session] = relationship(back_populates="chunks")


class ChunkHearingRow(Base):
    """What a chunk job heard of one chunk's stretch (``services.hearing.ChunkHearing``): the
    finish clusters and analyses these instead of decoding the whole recording again.

    Valid for the chunk with ``chunk_sha256`` after the chunk ``previous_number`` with
    ``previous_sha256`` (whose tail it carries; None: the first chunk), heard by ``hearer``
    (the models and settings); ``final``: heard to the chunk's end (rows from before every
    chunk was heard to its cut, the finish hearing the last chunk's coda: a last chunk only).
    ``samples``: the chunk's decoded length at 16 kHz, from which session times follow.
    A chunk that could not be decoded has ``error`` and nothing heard."""

    __tablename__ = "chunk_hearings"
    __table_args__ = (UniqueConstraint("session_id", "chunk_number"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    chunk_number: Mapped[int] = mapped_column(Integer)
    chunk_sha256: Mapped[str] = mapped_column(String(64))
    previous_number: Mapped[int | None] = mapped_column(Integer)
    previous_sha256: Mapped[str | None] = mapped_column(String(64))
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    hearer: Mapped[str] = mapped_column(String(255))
    samples: Mapped[int] = mapped_column(BigInteger, default=0)
    start_s: Mapped[float] = mapped_column(Float, default=0.0)
    end_s: Mapped[float] = mapped_column(Float, default=0.0)
    segments: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    verdicts: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    room: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    voices: Mapped[bytes | None] = mapped_column(LargeBinary)
    error: Mapped[str | None] = mapped_column(Text)
    heard_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SessionSpeaker(Base):
    """A voice found in a session; a user claims it as themselves or as a named guest."""

    __tablename__ = "session_speakers"
    __table_args__ = (UniqueConstraint("session_id", "label"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(32))
    segment_count: Mapped[int] = mapped_column(Integer, default=0)
    total_duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    dominant_emotion: Mapped[str | None] = mapped_column(String(16))
    sample_clip_key: Mapped[str | None] = mapped_column(String(255))
    claimed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("profiles.id"))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claim_type: Mapped[ClaimType | None] = mapped_column(_enum(ClaimType, "claim_type"))
    attributed_to_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("profiles.id"))
    guest_name: Mapped[str | None] = mapped_column(String(120))

    session: Mapped[Session] = relationship(back_populates="speakers")


class Segment(Base):
    """One utterance of the transcript, with its emotion."""

    __tablename__ = "segments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    speaker_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("session_speakers.id", ondelete="CASCADE")
    )
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    corrected_text: Mapped[str] = mapped_column(Text)
    emotion: Mapped[str | None] = mapped_column(String(16))
    emotion_score: Mapped[float | None] = mapped_column(Float)
    emotion_scores: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    # evidence for a recount without ASR: the recognised words ([start, end, text,
    # probability], text as written, leading space included) and the verifier's verdicts
    words: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    verdicts: Mapped[list[Any]] = mapped_column(JsonType, default=list)

    speaker: Mapped[SessionSpeaker] = relationship()


class WordOccurrence(Base):
    """One target word one speaker said: the evidence every count is derived from.

    ``heard`` is what the recogniser wrote there ("voila"), ``source`` what made it a target
    word (``asr``, ``correction``, ``verified``, or ``migrated`` for counts that predate
    occurrences and have no times), ``rule`` and ``dictionary_version`` the dictionary rule,
    ``score`` the recogniser's word probability or the verifier's margin, ``clip_key`` a
    short clip of it in storage.
    """

    __tablename__ = "word_occurrences"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    speaker_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("session_speakers.id", ondelete="CASCADE"), index=True
    )
    segment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE")
    )
    word: Mapped[str] = mapped_column(String(32))
    start_s: Mapped[float | None] = mapped_column(Float)
    end_s: Mapped[float | None] = mapped_column(Float)
    heard: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(Text, default="")
    dictionary_version: Mapped[str] = mapped_column(String(64), default="")
    score: Mapped[float | None] = mapped_column(Float)
    clip_key: Mapped[str | None] = mapped_column(String(255))
    # How sure we are (services/singlish/confidence.py; None: stored before confidences) and
    # whether it counts: a human decision if any, else confidence >= COUNT_MIN_CONFIDENCE.
    confidence: Mapped[float | None] = mapped_column(Float)
    confidence_version: Mapped[str] = mapped_column(String(64), default="", server_default="")
    counted: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    # the latest human decision ("disputed", "confirmed"; None: the threshold decides), by whom
    decision: Mapped[str | None] = mapped_column(String(16))
    decided_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("profiles.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    speaker: Mapped[SessionSpeaker] = relationship()
    segment: Mapped[Segment | None] = relationship()


class OccurrenceReview(Base):
    """One human change to an occurrence (a dispute or a confirmation): who, when, and the
    decision and count before and after, so every change can be traced and undone. Kept when
    a recount drops the occurrence (``occurrence_id`` becomes null; word and time stay)."""

    __tablename__ = "occurrence_reviews"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    occurrence_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("word_occurrences.id", ondelete="SET NULL"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("profiles.id"))
    action: Mapped[str] = mapped_column(String(16))  # "dispute" | "confirm"
    reason: Mapped[str | None] = mapped_column(String(200))
    word: Mapped[str] = mapped_column(String(32))
    start_s: Mapped[float | None] = mapped_column(Float)
    decision_before: Mapped[str | None] = mapped_column(String(16))
    decision_after: Mapped[str | None] = mapped_column(String(16))
    counted_before: Mapped[bool] = mapped_column(Boolean)
    counted_after: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- voiceprints (issue 17) ---------------------------------------------------------------------


class SpeakerVoiceRow(Base):
    """A session speaker's voice as one embedder heard it (``services.domain.SpeakerVoice``):
    a unit vector, comparable only with vectors of the same ``embedder``."""

    __tablename__ = "speaker_voices"

    speaker_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("session_speakers.id", ondelete="CASCADE"), primary_key=True
    )
    embedder: Mapped[str] = mapped_column(String(100), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    embedding: Mapped[list[float]] = mapped_column(JsonType)
    seconds: Mapped[float] = mapped_column(Float)
    # what the voice was heard from (services.voiceprints.heard_from): a reprocess reuses it
    heard_from: Mapped[str | None] = mapped_column(String(64))


class VoiceprintClaim(Base):
    """A self-claim made with consent, whose speaker's voices make up the claimer's
    voiceprints: deleting the claim (unclaim, session deleted) takes its contribution away."""

    __tablename__ = "voiceprint_claims"

    speaker_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("session_speakers.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), index=True
    )
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Voiceprint(Base):
    """A user's voice in one embedder's space: the seconds-weighted centroid (unit length) of
    the voices of their consented self-claims, kept in step with ``voiceprint_claims``."""

    __tablename__ = "voiceprints"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True
    )
    embedder: Mapped[str] = mapped_column(String(100), primary_key=True)
    embedding: Mapped[list[float]] = mapped_column(JsonType)
    seconds: Mapped[float] = mapped_column(Float)
    sessions: Mapped[int] = mapped_column(Integer)
    # the claimed speakers (session_speakers.id) it was built from
    claims: Mapped[list[str]] = mapped_column(JsonType, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SpeakerSuggestion(Base):
    """Whom a session speaker sounds like: the group member whose voiceprint matched, the
    cosine score and its margin over the runner-up (in the scale the suggestion was judged
    in: the normalised one under ``VOICEPRINT_SCORE_NORM=as-norm``); ``auto_claimed`` when
    the group's auto-claiming claimed the speaker on the strength of it."""

    __tablename__ = "speaker_suggestions"

    speaker_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("session_speakers.id", ondelete="CASCADE"), primary_key=True
    )
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    margin: Mapped[float] = mapped_column(Float)
    embedder: Mapped[str] = mapped_column(String(100))
    auto_claimed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
