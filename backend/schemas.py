"""Request and response bodies. Field names follow ../shared/API_CONTRACT.md exactly."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    UrlConstraints,
    model_validator,
)

from models import ClaimType, SessionStatus

SpeakerCount = Field(default=None, ge=1, le=20)
NAME_LENGTH = 120  # the columns' length (models.py)
WEBHOOK_URL_LENGTH = 2048
# control characters (NUL, newlines, escapes) and lone surrogates: no name has them, and
# Postgres refuses NUL and surrogates outright
_REFUSED_CATEGORIES = {"Cc", "Cs"}


def clean_text(value: str, max_length: int = NAME_LENGTH) -> str:
    """Text as stored and compared: NFC, without surrounding blanks, no control characters,
    at most ``max_length`` characters after normalising (which can lengthen it)."""
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        raise ValueError("must not be blank")
    if any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in value):
        raise ValueError("must not contain control characters")
    if len(value) > max_length:
        raise ValueError(f"must be at most {max_length} characters")
    return value


# A human-given name (group, member nickname, guest): the same rule everywhere.
Name = Annotated[str, Field(min_length=1, max_length=NAME_LENGTH), AfterValidator(clean_text)]
WebhookUrl = Annotated[
    AnyHttpUrl, UrlConstraints(max_length=WEBHOOK_URL_LENGTH, allowed_schemes=["http", "https"])
]


class ErrorDetail(BaseModel):
    code: str = Field(examples=["session_not_found"])
    message: str


class ErrorResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"error": {"code": "session_not_found", "message": "session not found"}}]
        }
    )

    error: ErrorDetail


class GroupCreate(BaseModel):
    name: Name = Field(examples=["Kopi kakis"])


class GroupPublic(BaseModel):
    id: uuid.UUID
    name: str


class MemberAdd(BaseModel):
    """``display_name`` is the adder's nickname for the member in this group only; the
    member's own profile name (``PATCH /me``) is theirs to set."""

    user_id: uuid.UUID
    display_name: Name | None = None


class MemberPublic(BaseModel):
    user_id: uuid.UUID
    display_name: str | None
    # "admin" (may delete any session of the group, change its settings) or "member"
    role: Literal["admin", "member"] = "member"


class GroupDetail(GroupPublic):
    members: list[MemberPublic]
    # claim a speaker for a member at once when their voiceprint matches very surely
    auto_claim_voices: bool = False


class GroupSettings(BaseModel):
    """What a group's admin may change."""

    model_config = ConfigDict(extra="forbid")

    auto_claim_voices: bool


class GroupsPublic(BaseModel):
    """The caller's groups, oldest first."""

    groups: list[GroupPublic]


class LeaderboardEntry(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "5b0e2f7a-1c2d-4e3f-8a9b-0c1d2e3f4a5b",
                    "display_name": "Wei Ling",
                    "total": 52,
                    "word_counts": {"lah": 30, "walao": 12, "shiok": 10},
                }
            ]
        }
    )

    user_id: uuid.UUID
    display_name: str | None
    total: int
    word_counts: dict[str, int]


class GroupStats(BaseModel):
    group_id: uuid.UUID
    members: list[LeaderboardEntry]


class SessionStart(BaseModel):
    group_id: uuid.UUID


class SessionStarted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"session_id": "2f1c6a8e-4a53-4f7e-9d7a-1b2c3d4e5f60", "status": "recording"}
            ]
        }
    )

    session_id: uuid.UUID
    status: SessionStatus


class ChunkStored(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_id": "2f1c6a8e-4a53-4f7e-9d7a-1b2c3d4e5f60",
                    "chunk_number": 3,
                    "size_bytes": 241664,
                    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                }
            ]
        }
    )

    session_id: uuid.UUID
    chunk_number: int
    size_bytes: int
    sha256: str


class SessionReprocess(BaseModel):
    """Speaker-count hints for diarization, all optional (none = estimate the count); the
    body of ``reprocess``, and with a webhook that of ``end``."""

    model_config = ConfigDict(extra="forbid")

    num_speakers: int | None = SpeakerCount
    min_speakers: int | None = SpeakerCount
    max_speakers: int | None = SpeakerCount

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        lo, hi, n = self.min_speakers, self.max_speakers, self.num_speakers
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_speakers must not exceed max_speakers")
        if n is not None and ((lo is not None and n < lo) or (hi is not None and n > hi)):
            raise ValueError("num_speakers must lie between min_speakers and max_speakers")
        return self


class SessionEnd(SessionReprocess):
    """Optional speaker-count hints for diarization, and where to send the result's event."""

    webhook_url: WebhookUrl | None = Field(
        default=None,
        description="POSTed a signed event when the session is processed (ready, or "
        "completed with nothing to claim) or failed. Public addresses only (no loopback, "
        "private or link-local targets); https in production.",
    )


class SessionEnded(BaseModel):
    status: SessionStatus


class SessionStatusPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "processing",
                    "progress": 45,
                    "stage": "transcribing",
                    "error_message": None,
                    "warnings": [],
                    "chunks_uploaded": 12,
                    "chunks_heard": 11,
                }
            ]
        }
    )

    status: SessionStatus = Field(
        description="`completed` once every speaker is claimed, or at once when nobody was "
        "heard (no speaker to claim; `warnings` says so)"
    )
    progress: int = Field(ge=0, le=100)
    stage: str | None
    error_message: str | None
    warnings: list[str] = []
    chunks_uploaded: int = Field(
        default=0, ge=0, description="Chunks stored for this session (live while recording)"
    )
    chunks_heard: int = Field(
        default=0,
        ge=0,
        description="Chunks already heard (transcribed, their voices embedded) while recording: "
        "what is left to hear after `end` is chunks_uploaded - chunks_heard",
    )


class SessionSummary(BaseModel):
    """One of a group's sessions as a list shows it; ``/sessions/{id}/status`` has the rest."""

    id: uuid.UUID
    status: SessionStatus
    progress: int = Field(ge=0, le=100)
    stage: str | None
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: float | None = Field(description="Length of the recording, once processed")


class SessionsPublic(BaseModel):
    sessions: list[SessionSummary]


class SpeakerPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "7d7c0e1e-9a51-4c39-8b0e-3f1f2a9b8c7d",
                    "speaker_label": "SPEAKER_00",
                    "sample_audio_url": "/media/sessions/2f1c/clips/speaker_00.ogg?sig=x",
                    "total_duration_seconds": 45.5,
                    "segment_count": 12,
                    "word_counts": {"lah": 15, "walao": 3},
                    "dominant_emotion": "joy",
                    "claimed_by": None,
                    "claim_type": None,
                    "guest_name": None,
                }
            ]
        }
    )

    id: uuid.UUID
    speaker_label: str
    sample_audio_url: str | None
    total_duration_seconds: float
    segment_count: int
    word_counts: dict[str, int]
    dominant_emotion: str | None
    claimed_by: uuid.UUID | None
    claim_type: ClaimType | None
    guest_name: str | None
    claimed_at: datetime | None = None
    # whom the voice sounds like (a member of the group with a voiceprint), and how sure:
    # the cosine score against their voiceprint; null when nobody matches surely enough
    suggested_user_id: uuid.UUID | None = None
    suggested_display_name: str | None = None
    suggestion_confidence: float | None = None
    # the group's auto-claiming claimed it (the member undoes it like any claim of theirs)
    auto_claimed: bool = False


class SpeakersPublic(BaseModel):
    speakers: list[SpeakerPublic]


class SegmentPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "speaker_id": "7d7c0e1e-9a51-4c39-8b0e-3f1f2a9b8c7d",
                    "speaker_label": "SPEAKER_00",
                    "start": 12.4,
                    "end": 15.9,
                    "text": "while up why you do that la",
                    "corrected_text": "walao why you do that lah",
                    "emotion": "surprise",
                    "emotion_score": 0.71,
                    "emotion_scores": {
                        "anger": 0.05,
                        "disgust": 0.02,
                        "fear": 0.03,
                        "joy": 0.1,
                        "neutral": 0.07,
                        "sadness": 0.02,
                        "surprise": 0.71,
                    },
                }
            ]
        }
    )

    speaker_id: uuid.UUID
    speaker_label: str
    start: float
    end: float
    text: str
    corrected_text: str
    emotion: str | None
    emotion_score: float | None
    emotion_scores: dict[str, float]


class TranscriptPublic(BaseModel):
    segments: list[SegmentPublic]


class ProvisionalSegmentPublic(BaseModel):
    start: float
    end: float
    text: str


class ProvisionalTranscriptPublic(BaseModel):
    """What the chunk jobs of a live session have heard so far, while it records: words
    only (who spoke is decided when the session ends), in session seconds, from the chunks
    heard in order from the first (``chunks_heard``); the last chunk's final seconds come
    with the finish. The processed transcript (``/transcript``) replaces it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "chunks_heard": 2,
                    "segments": [
                        {"start": 0.4, "end": 3.1, "text": "Walao, the queue so long."},
                        {"start": 3.6, "end": 5.0, "text": "Can lah."},
                    ],
                }
            ]
        }
    )

    chunks_heard: int
    segments: list[ProvisionalSegmentPublic]


class OccurrencePublic(BaseModel):
    """One counted target word and why it was counted. ``heard`` is what the recogniser wrote
    there, ``text`` the utterance it came from; ``source`` says what made it the target word
    (``asr``: written as is; ``correction``: a dictionary rule rewrote it; ``verified``: a
    rule confirmed by a second listen; ``migrated``: a count from before evidence was kept,
    with no times); ``score`` is the recogniser's word probability (0-1), or for ``verified``
    the verifier's margin in nats. ``clip_url`` plays the word with a little context
    (expiring URL)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "2b9f5d1a-4c1e-4e0b-9d61-6f0c6a7e8b21",
                    "speaker_id": "7d7c0e1e-9a51-4c39-8b0e-3f1f2a9b8c7d",
                    "speaker_label": "SPEAKER_00",
                    "word": "walao",
                    "start": 12.4,
                    "end": 12.9,
                    "text": "Voila, why you do that la?",
                    "heard": "Voila",
                    "source": "correction",
                    "rule": "voila -> walao",
                    "dictionary_version": "singlish-2",
                    "score": 0.62,
                    "clip_url": "/media/sessions/.../evidence/000011800-000013500.ogg?exp=...",
                }
            ]
        }
    )

    id: uuid.UUID
    speaker_id: uuid.UUID
    speaker_label: str
    word: str
    start: float | None
    end: float | None
    text: str | None
    heard: str
    source: str
    rule: str
    dictionary_version: str
    score: float | None
    clip_url: str | None
    # added by issue 14 (confidence, disputes); null where not known
    confidence: float | None = Field(
        default=None,
        description="Calibrated probability (0-1) that this occurrence is right; null for "
        "counts from before confidences until the next recount",
    )
    counted: bool = Field(
        default=True,
        description="Whether it is in the counts: a member's decision if any, else "
        "confidence >= COUNT_MIN_CONFIDENCE (below it: a 'possible' occurrence)",
    )
    decision: Literal["disputed", "confirmed"] | None = None
    decided_by: uuid.UUID | None = None
    decided_at: datetime | None = None


class OccurrencesPublic(BaseModel):
    occurrences: list[OccurrencePublic]


# --- disputes and confirmations (issue 14) ------------------------------------------------------

REASON_LENGTH = 200  # occurrence_reviews.reason


class OccurrenceReviewRequest(BaseModel):
    """Why (optional): "that wasn't 'lah'"."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "that wasn't 'lah'"}]}
    )

    reason: (
        Annotated[
            str,
            Field(min_length=1, max_length=REASON_LENGTH),
            AfterValidator(lambda v: clean_text(v, REASON_LENGTH)),
        ]
        | None
    ) = None


class OccurrenceReviewPublic(BaseModel):
    """One change a member made to an occurrence: who, when, and the decision and whether it
    counted before and after."""

    id: uuid.UUID
    occurrence_id: uuid.UUID | None
    user_id: uuid.UUID
    action: Literal["dispute", "confirm"]
    reason: str | None
    word: str
    start: float | None
    decision_before: Literal["disputed", "confirmed"] | None
    decision_after: Literal["disputed", "confirmed"] | None
    counted_before: bool
    counted_after: bool
    created_at: datetime


class OccurrenceReviewsPublic(BaseModel):
    reviews: list[OccurrenceReviewPublic]


class ClaimRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "speaker_id": "7d7c0e1e-9a51-4c39-8b0e-3f1f2a9b8c7d",
                    "claim_type": "guest",
                    "guest_name": "Uncle Tan",
                }
            ]
        }
    )

    speaker_id: uuid.UUID
    claim_type: Literal["self", "guest"]
    guest_name: Name | None = None
    # self claims: may LahStats keep a voiceprint from this and later self-claims? Recorded
    # on your profile and reused until changed; omitted: the answer you gave before
    remember_voice: bool | None = None

    @model_validator(mode="after")
    def _guest_named(self) -> ClaimRequest:
        if self.claim_type == "guest" and not self.guest_name:
            raise ValueError("a guest claim needs guest_name")
        if self.claim_type == "self" and self.guest_name:
            raise ValueError("guest_name is only for guest claims")
        if self.claim_type == "guest" and self.remember_voice is not None:
            raise ValueError("remember_voice is only for self claims: guests get no voiceprint")
        return self


class ClaimResult(BaseModel):
    success: bool
    # your answer on keeping a voiceprint; null: never asked (ask on a self claim)
    remember_voice: bool | None = None
    # whether this claim's voice went into your voiceprint
    voiceprint_updated: bool = False


class VoiceprintSpace(BaseModel):
    """Your voiceprint in one embedder's space (a new embedder starts a new one)."""

    embedder: str
    sessions: int
    seconds: float
    updated_at: datetime


class VoiceprintPublic(BaseModel):
    """Whether LahStats keeps a voiceprint of you, built from how many sessions, when."""

    remember_voice: bool | None
    exists: bool
    sessions: int
    updated_at: datetime | None
    voiceprints: list[VoiceprintSpace]


class VoiceprintConsent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # false: keep no voiceprint (any kept is deleted at once); true: keep one from your
    # self-claims from now on
    remember_voice: bool


class ProfilePublic(BaseModel):
    user_id: uuid.UUID
    display_name: str | None


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: Name = Field(examples=["Wei Ling"])


class HealthPublic(BaseModel):
    status: Literal["healthy", "unhealthy"]
    database: str
    redis: str
    storage: str
    timestamp: datetime
