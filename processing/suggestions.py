"""Claim suggestions: each speaker of a session against the voiceprints of its group's members.

Run in the results transaction (``rows.save``) and by anything that recomputes a session's
results (a reprocess calls :func:`refresh_suggestions` the same way). Only the configured
embedder's vectors are compared: voiceprints made by another embedder (or another version of
it) are left out until the member claims again, never compared across spaces. With
``VOICEPRINT_SCORE_NORM=as-norm`` the scores are normalised against a cohort of voiceprints
of people outside the group (``voice_library.cohort_voiceprints``). With
``VOICEPRINT_MEMBER_FLOOR`` each member with two or more claims has their own floor, from the
voices behind their voiceprint (``voice_library.claimed_voices``).
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
from services.voiceprints import CohortNorm, FloorRule, match_voices, member_floors

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Matching:
    """Which space to match in and how sure a suggestion (or an auto-claim: a raw cosine)
    must be; with ``cohort_size``, AS-norm against up to that many voiceprints of people
    outside the group, its top ``top_k`` and its thresholds in the normalised scale; with a
    ``floor_rule``, per-member floors from each member's own claims."""

    embedder: str
    min_score: float
    min_margin: float
    auto_claim_score: float
    cohort_size: int = 0  # 0: raw cosines
    top_k: int = 0
    norm_min_score: float = 0.0
    norm_min_margin: float = 0.0
    floor_rule: FloorRule | None = None  # None: the global threshold for everyone

    @classmethod
    def of(cls, settings: Settings, embedder: str) -> Matching:
        normalised = settings.voiceprint_score_norm == "as-norm"
        return cls(
            embedder,
            settings.voiceprint_min_score,
            settings.voiceprint_min_margin,
            settings.voiceprint_auto_claim_score,
            cohort_size=settings.voiceprint_cohort_size if normalised else 0,
            top_k=settings.voiceprint_cohort_top_k,
            norm_min_score=settings.voiceprint_norm_min_score,
            norm_min_margin=settings.voiceprint_norm_min_margin,
            floor_rule=(
                FloorRule(settings.voiceprint_member_floor_slack)
                if settings.voiceprint_member_floor
                else None
            ),
        )

    def norm(self, db: DbSession, group_id: uuid.UUID) -> CohortNorm | None:
        """The cohort norm for the group's sessions (None: raw cosines)."""
        if not self.cohort_size:
            return None
        cohort = voice_library.cohort_voiceprints(db, group_id, self.embedder, self.cohort_size)
        vectors = tuple(tuple(v) for v in cohort)
        return CohortNorm(vectors, self.top_k, self.norm_min_score, self.norm_min_margin)

    def floors(self, db: DbSession, group_id: uuid.UUID) -> dict[uuid.UUID, float]:
        """Each group member's floor (raw cosine) from their own claims; empty: none."""
        if self.floor_rule is None:
            return {}
        claimed = {
            user: [SpeakerVoice(str(n), tuple(v), self.embedder, s) for n, (v, s) in enumerate(vs)]
            for user, vs in voice_library.claimed_voices(db, group_id, self.embedder).items()
        }
        return member_floors(claimed, self.floor_rule)


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
    wanted = bool(open_voices and voiceprints)
    norm = matching.norm(db, session.group_id) if wanted else None
    floors = matching.floors(db, session.group_id) if wanted else {}
    matches = match_voices(
        open_voices, voiceprints, matching.min_score, matching.min_margin, norm, floors
    )
    group = db.get(Group, session.group_id)
    auto = group is not None and group.auto_claim_voices
    for match in matches:
        speaker = speakers[match.speaker]
        user_id = uuid.UUID(str(match.user))
        claim = auto and match.cosine >= matching.auto_claim_score
        db.add(
            SpeakerSuggestion(
                speaker_id=speaker.id,
                session_id=session.id,
                user_id=user_id,
                score=match.cosine,
                margin=match.margin,
                embedder=matching.embedder,
                auto_claimed=claim,
            )
        )
        if claim:
            _auto_claim(speaker, user_id)
    if auto and speakers and all(s.claimed_by is not None for s in speakers.values()):
        lifecycle.claimed(session, unclaimed_left=0)
    log.info(
        "voiceprints.suggested",
        session_id=str(session.id),
        suggestions=len(matches),
        normalised=norm is not None and norm.applies,
        member_floors=len(floors),
    )
    return len(matches)


def _auto_claim(speaker: SessionSpeaker, user_id: uuid.UUID) -> None:
    """Claim the speaker for the member, marked as automatic (``auto_claimed``), which the
    member undoes like any claim of theirs. It adds nothing to their voiceprint: only a
    claim a person made does."""
    speaker.claimed_by = speaker.attributed_to_user_id = user_id
    speaker.claim_type = ClaimType.SELF
    speaker.claimed_at = datetime.now(UTC)
