"""Claim suggestions: each speaker of a session against the voiceprints of its group's members.

Run in the results transaction (``rows.save``) and by anything that recomputes a session's
results (a reprocess calls :func:`refresh_suggestions` the same way). Only the configured
embedder's vectors are compared: voiceprints made by another embedder (or another version of
it) are left out until the member claims again, never compared across spaces.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session as DbSession

import lifecycle
import voice_library
from config import Settings
from models import ClaimType, Group, Session, SessionSpeaker, SpeakerSuggestion, SpeakerVoiceRow
from services.domain import SpeakerVoice
from services.voiceprints import match_voices

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Matching:
    """Which space to match in and how sure a suggestion (or an auto-claim) must be."""

    embedder: str
    min_score: float
    min_margin: float
    auto_claim_score: float

    @classmethod
    def of(cls, settings: Settings, embedder: str) -> Matching:
        return cls(
            embedder,
            settings.voiceprint_min_score,
            settings.voiceprint_min_margin,
            settings.voiceprint_auto_claim_score,
        )


def refresh_suggestions(db: DbSession, session: Session, matching: Matching) -> int:
    """Replace the session's suggestions; auto-claim the surest when its group allows it.
    Speakers already claimed, and members who already claimed a speaker of the session as
    themselves, are left out. Returns how many suggestions were made. Commits nothing."""
    db.execute(delete(SpeakerSuggestion).where(SpeakerSuggestion.session_id == session.id))
    speakers = {
        s.label: s
        for s in db.scalars(select(SessionSpeaker).where(SessionSpeaker.session_id == session.id))
    }
    claimed_users = {s.claimed_by for s in speakers.values() if s.claim_type is ClaimType.SELF}
    voiceprints = {
        user: vector
        for user, vector in voice_library.group_voiceprints(
            db, session.group_id, matching.embedder
        ).items()
        if user not in claimed_users
    }
    open_voices = [
        SpeakerVoice(speakers[label].label, tuple(row.embedding), row.embedder, row.seconds)
        for row, label in db.execute(
            select(SpeakerVoiceRow, SessionSpeaker.label)
            .join(SessionSpeaker, SessionSpeaker.id == SpeakerVoiceRow.speaker_id)
            .where(
                SpeakerVoiceRow.session_id == session.id,
                SpeakerVoiceRow.embedder == matching.embedder,
            )
            .order_by(SessionSpeaker.label)
        )
        if speakers[label].claimed_by is None
    ]
    matches = match_voices(open_voices, voiceprints, matching.min_score, matching.min_margin)
    group = db.get(Group, session.group_id)
    auto = group is not None and group.auto_claim_voices
    for match in matches:
        speaker = speakers[match.speaker]
        user_id = uuid.UUID(str(match.user))
        claim = auto and match.score >= matching.auto_claim_score
        db.add(
            SpeakerSuggestion(
                speaker_id=speaker.id,
                session_id=session.id,
                user_id=user_id,
                score=match.score,
                margin=match.margin,
                embedder=matching.embedder,
                auto_claimed=claim,
            )
        )
        if claim:
            _auto_claim(speaker, user_id)
    if auto and speakers and all(s.claimed_by is not None for s in speakers.values()):
        lifecycle.claimed(session, unclaimed_left=0)
    log.info("voiceprints.suggested", session_id=str(session.id), suggestions=len(matches))
    return len(matches)


def _auto_claim(speaker: SessionSpeaker, user_id: uuid.UUID) -> None:
    """Claim the speaker for the member, marked as automatic (``auto_claimed``), which the
    member undoes like any claim of theirs. It adds nothing to their voiceprint: only a
    claim a person made does."""
    speaker.claimed_by = speaker.attributed_to_user_id = user_id
    speaker.claim_type = ClaimType.SELF
    speaker.claimed_at = datetime.now(UTC)
