"""A member's dispute or confirmation of an occurrence: the one place an occurrence's human
decision changes, and every change is recorded (who, when, before → after).

- A dispute takes the occurrence out of the counts at once, for everyone; a confirmation puts
  it in (a "possible" one below the threshold, or a disputed one).
- The speaker's own word wins: once the user who claimed the speaker as themselves decided,
  only they change it; a disputed occurrence of a claimed speaker is put back only by that
  user (or by whoever disputed it, taking it back). Of an unclaimed speaker, the latest
  member's decision stands.
- Reversible: the opposite action undoes a change, and the history keeps both.

Nothing here commits: the request does, holding the session's row lock (which a recount
takes too), so concurrent decisions on one occurrence apply one after the other.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from backend.errors import Conflict
from models import ClaimType, OccurrenceReview, SessionSpeaker, WordOccurrence

Action = Literal["dispute", "confirm"]
# as services/singlish/confidence.py names them (the API imports nothing of services/)
DISPUTED, CONFIRMED = "disputed", "confirmed"
_AFTER = {"dispute": DISPUTED, "confirm": CONFIRMED}


def speaker_owner(speaker: SessionSpeaker) -> uuid.UUID | None:
    """The user the speaker is, if someone claimed it as themselves."""
    return speaker.attributed_to_user_id if speaker.claim_type is ClaimType.SELF else None


def review(
    occurrence: WordOccurrence,
    speaker: SessionSpeaker,
    user_id: uuid.UUID,
    action: Action,
    reason: str | None,
    now: datetime,
) -> OccurrenceReview | None:
    """Apply ``user_id``'s ``action`` to ``occurrence`` (its row locked by the caller); the
    review row to add, or None when it changes nothing. 409 when the speaker's own decision
    stands in the way."""
    after = _AFTER[action]
    if occurrence.decision == after and occurrence.decided_by == user_id:
        return None
    _check_allowed(occurrence, speaker_owner(speaker), user_id, after)
    record = OccurrenceReview(
        session_id=occurrence.session_id,
        occurrence_id=occurrence.id,
        user_id=user_id,
        action=action,
        reason=reason,
        word=occurrence.word,
        start_s=occurrence.start_s,
        decision_before=occurrence.decision,
        decision_after=after,
        counted_before=occurrence.counted,
        counted_after=after == CONFIRMED,
        created_at=now,
    )
    occurrence.decision, occurrence.decided_by, occurrence.decided_at = after, user_id, now
    occurrence.counted = after == CONFIRMED  # a decision wins over the threshold (counts())
    return record


def _check_allowed(
    occurrence: WordOccurrence, owner: uuid.UUID | None, user_id: uuid.UUID, after: str
) -> None:
    if owner is None or user_id == owner:
        return
    if occurrence.decided_by == owner and occurrence.decision != after:
        raise Conflict(
            "the speaker decided this one themselves; only they can change it",
            code="speaker_decided",
        )
    if after == CONFIRMED and occurrence.decision == DISPUTED and occurrence.decided_by != user_id:
        raise Conflict(
            "disputed: only the speaker, or whoever disputed it, can put it back",
            code="occurrence_disputed",
        )
