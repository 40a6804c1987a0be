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
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy import true as sa_true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

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


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(120))
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("profiles.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

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
