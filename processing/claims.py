"""Claims across a re-diarization: a session processed again (``lahstats reprocess``, the
reprocess route: a new speaker count) gets new speakers. A claim is kept where its speaker
still exists in the same place, that is, when one new speaker's words lie mostly where the
claimed speaker's did and mostly nowhere else; any other claim is released, and the session's
warnings say which and why (the claimer then claims again).

Read before the old speakers are deleted (:func:`held_claims`), carried after the new ones are
inserted (:func:`carry_claims`), in the results' transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

import voice_library
from models import ClaimType, Segment, SessionSpeaker, VoiceprintClaim

# Share of the claimed speaker's words, and of the new speaker's, that must lie in the same
# place for the claim to be the same person's
SAME_PLACE_SHARE = 0.5

Span = tuple[float, float]


@dataclass(frozen=True)
class HeldClaim:
    """A claim on one of the session's speakers, and where that speaker's words were."""

    label: str
    spans: tuple[Span, ...]
    claimed_by: uuid.UUID
    claimed_at: datetime | None
    claim_type: ClaimType | None
    guest_name: str | None
    attributed_to_user_id: uuid.UUID | None
    remembered: bool  # a consented self-claim: its voice is in the claimer's voiceprint


def held_claims(db: DbSession, session_id: uuid.UUID) -> list[HeldClaim]:
    """The session's claims as they stand, with their speakers' segment spans."""
    speakers = db.scalars(
        select(SessionSpeaker).where(
            SessionSpeaker.session_id == session_id, SessionSpeaker.claimed_by.is_not(None)
        )
    ).all()
    if not speakers:
        return []
    spans: dict[uuid.UUID, list[Span]] = defaultdict(list)
    for speaker_id, start, end in db.execute(
        select(Segment.speaker_id, Segment.start_s, Segment.end_s).where(
            Segment.session_id == session_id
        )
    ):
        spans[speaker_id].append((start, end))
    remembered = set(
        db.scalars(
            select(VoiceprintClaim.speaker_id).where(VoiceprintClaim.session_id == session_id)
        )
    )
    return [
        HeldClaim(
            label=s.label,
            spans=tuple(spans[s.id]),
            claimed_by=s.claimed_by,
            claimed_at=s.claimed_at,
            claim_type=s.claim_type,
            guest_name=s.guest_name,
            attributed_to_user_id=s.attributed_to_user_id,
            remembered=s.id in remembered,
        )
        for s in speakers
        if s.claimed_by is not None
    ]


def carry_claims(
    db: DbSession,
    session_id: uuid.UUID,
    held: Sequence[HeldClaim],
    speakers: Mapping[str, SessionSpeaker],
    spans: Mapping[str, Sequence[Span]],
) -> list[str]:
    """Give each held claim to the new speaker in its place (``speakers`` and their segment
    ``spans`` by label; rows flushed); returns a warning per claim released. The claimers'
    voiceprints follow: a kept consented claim contributes the new speaker's voice."""
    warnings: list[str] = []
    taken: set[str] = set()
    users: set[uuid.UUID] = set()
    for claim in held:
        label = _same_place(claim.spans, spans, exclude=taken)
        users.add(claim.claimed_by)
        if label is None:
            who = claim.guest_name or "a member"
            warnings.append(
                f"the claim of {claim.label} ({who}) was released: after processing again no "
                "speaker is in that speaker's place; claim again"
            )
            continue
        taken.add(label)
        speaker = speakers[label]
        speaker.claimed_by, speaker.claimed_at = claim.claimed_by, claim.claimed_at
        speaker.claim_type, speaker.guest_name = claim.claim_type, claim.guest_name
        speaker.attributed_to_user_id = claim.attributed_to_user_id
        if claim.remembered:
            db.add(
                VoiceprintClaim(
                    speaker_id=speaker.id, user_id=claim.claimed_by, session_id=session_id
                )
            )
    db.flush()
    for user_id in sorted(users):
        voice_library.rebuild(db, user_id)
    return warnings


def _same_place(
    old: Sequence[Span], new: Mapping[str, Sequence[Span]], exclude: set[str]
) -> str | None:
    """The new speaker whose words lie mostly where ``old``'s did, and mostly only there."""
    total_old = sum(b - a for a, b in old)
    best: tuple[float, str] | None = None
    for label, spans in new.items():
        if label in exclude:
            continue
        shared = _overlap(old, spans)
        total_new = sum(d - c for c, d in spans)
        if (
            total_old > 0
            and total_new > 0
            and shared >= SAME_PLACE_SHARE * total_old
            and shared >= SAME_PLACE_SHARE * total_new
            and (best is None or shared > best[0])
        ):
            best = (shared, label)
    return None if best is None else best[1]


def _overlap(first: Sequence[Span], second: Sequence[Span]) -> float:
    """Seconds the two sets of spans share (each set's spans may not overlap each other)."""
    a, b = sorted(first), sorted(second)
    i = j = 0
    shared = 0.0
    while i < len(a) and j < len(b):
        shared += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return shared
