"""Request and response bodies. Field names follow ../shared/API_CONTRACT.md exactly."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from models import ClaimType, SessionStatus

SpeakerCount = Field(default=None, ge=1, le=20)


class ErrorDetail(BaseModel):
    code: str = Field(examples=["session_not_found"])
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class GroupCreate(BaseModel):
    name: str = Field(min_length=1, max_length=120, examples=["Kopi kakis"])


class GroupPublic(BaseModel):
    id: uuid.UUID
    name: str


class MemberAdd(BaseModel):
    user_id: uuid.UUID
    display_name: str | None = Field(default=None, max_length=120)


class MemberPublic(BaseModel):
    user_id: uuid.UUID
    display_name: str | None


class GroupDetail(GroupPublic):
    members: list[MemberPublic]


class LeaderboardEntry(BaseModel):
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
    session_id: uuid.UUID
    status: SessionStatus


class ChunkStored(BaseModel):
    session_id: uuid.UUID
    chunk_number: int
    size_bytes: int
    sha256: str


class SessionEnd(BaseModel):
    """Optional speaker-count hints for diarization."""

    model_config = ConfigDict(extra="forbid")

    num_speakers: int | None = SpeakerCount
    min_speakers: int | None = SpeakerCount
    max_speakers: int | None = SpeakerCount
    webhook_url: AnyHttpUrl | None = Field(
        default=None, description="POSTed a signed event when the session is ready or failed"
    )

    @model_validator(mode="after")
    def _consistent(self) -> SessionEnd:
        lo, hi, n = self.min_speakers, self.max_speakers, self.num_speakers
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_speakers must not exceed max_speakers")
        if n is not None and ((lo is not None and n < lo) or (hi is not None and n > hi)):
            raise ValueError("num_speakers must lie between min_speakers and max_speakers")
        return self


class SessionEnded(BaseModel):
    status: SessionStatus


class SessionStatusPublic(BaseModel):
    status: SessionStatus
    progress: int = Field(ge=0, le=100)
    stage: str | None
    error_message: str | None
    warnings: list[str] = []


class SpeakerPublic(BaseModel):
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


class SpeakersPublic(BaseModel):
    speakers: list[SpeakerPublic]


class SegmentPublic(BaseModel):
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


class ClaimRequest(BaseModel):
    speaker_id: uuid.UUID
    claim_type: Literal["self", "guest"]
    guest_name: str | None = Field(default=None, min_length=1, max_length=120)

    @model_validator(mode="after")
    def _guest_named(self) -> ClaimRequest:
        if self.claim_type == "guest" and not self.guest_name:
            raise ValueError("a guest claim needs guest_name")
        if self.claim_type == "self" and self.guest_name:
            raise ValueError("guest_name is only for guest claims")
        return self


class ClaimResult(BaseModel):
    success: bool


class HealthPublic(BaseModel):
    status: Literal["healthy", "unhealthy"]
    database: str
    redis: str
    storage: str
    timestamp: datetime
