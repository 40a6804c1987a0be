"""Disputes and confirmations of a session's occurrences, and their history (issue 14)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import select

from backend import crud
from backend.deps import CurrentUser, DbDep, SettingsDep, StorageDep
from backend.errors import NotFound
from backend.reviews import Action, review
from backend.routes.responses import errors
from backend.schemas import (
    OccurrencePublic,
    OccurrenceReviewPublic,
    OccurrenceReviewRequest,
    OccurrenceReviewsPublic,
)
from models import OccurrenceReview, Segment, SessionSpeaker, WordOccurrence

router = APIRouter(prefix="/sessions", tags=["occurrences"])


@router.post(
    "/{session_id}/occurrences/{occurrence_id}/dispute", responses=errors(401, 404, 409, 422)
)
def dispute_occurrence(
    session_id: uuid.UUID,
    occurrence_id: uuid.UUID,
    db: DbDep,
    user: CurrentUser,
    storage: StorageDep,
    settings: SettingsDep,
    body: OccurrenceReviewRequest | None = None,
) -> OccurrencePublic:
    """Say this occurrence is wrong ("that wasn't 'lah'"): it stops counting at once, for
    everyone. Only the speaker (the user who claimed it as themselves) can overrule a
    dispute; see ``/confirm``."""
    return _review(db, session_id, occurrence_id, user.id, "dispute", body, storage, settings)


@router.post(
    "/{session_id}/occurrences/{occurrence_id}/confirm", responses=errors(401, 404, 409, 422)
)
def confirm_occurrence(
    session_id: uuid.UUID,
    occurrence_id: uuid.UUID,
    db: DbDep,
    user: CurrentUser,
    storage: StorageDep,
    settings: SettingsDep,
    body: OccurrenceReviewRequest | None = None,
) -> OccurrencePublic:
    """Say this occurrence is right: a "possible" one (below ``COUNT_MIN_CONFIDENCE``) then
    counts, and a disputed one counts again (of a claimed speaker: only that user, or whoever
    disputed it, can put a disputed one back; 409 otherwise)."""
    return _review(db, session_id, occurrence_id, user.id, "confirm", body, storage, settings)


@router.get("/{session_id}/occurrences/{occurrence_id}/reviews", responses=errors(401, 404))
def occurrence_reviews(
    session_id: uuid.UUID, occurrence_id: uuid.UUID, db: DbDep, user: CurrentUser
) -> OccurrenceReviewsPublic:
    """Every dispute and confirmation of the occurrence, oldest first: who, when, and the
    decision and count before and after."""
    crud.session_for_member(db, session_id, user.id)
    _occurrence_of(db, session_id, occurrence_id, lock=False)
    rows = db.scalars(
        select(OccurrenceReview)
        .where(OccurrenceReview.occurrence_id == occurrence_id)
        .order_by(OccurrenceReview.created_at, OccurrenceReview.id)
    )
    return OccurrenceReviewsPublic(
        reviews=[
            OccurrenceReviewPublic(
                id=r.id,
                occurrence_id=r.occurrence_id,
                user_id=r.user_id,
                action=r.action,  # type: ignore[arg-type]  # the column only holds these
                reason=r.reason,
                word=r.word,
                start=r.start_s,
                decision_before=r.decision_before,  # type: ignore[arg-type]
                decision_after=r.decision_after,  # type: ignore[arg-type]
                counted_before=r.counted_before,
                counted_after=r.counted_after,
                created_at=r.created_at,
            )
            for r in rows
        ]
    )


def _review(
    db: DbDep,
    session_id: uuid.UUID,
    occurrence_id: uuid.UUID,
    user_id: uuid.UUID,
    action: Action,
    body: OccurrenceReviewRequest | None,
    storage: StorageDep,
    settings: SettingsDep,
) -> OccurrencePublic:
    # The session's row lock (a recount and claims take it too) serialises every decision
    # on its occurrences: concurrent disputes and confirmations apply one after the other.
    crud.session_for_member(db, session_id, user_id, for_update=True)
    occurrence = _occurrence_of(db, session_id, occurrence_id, lock=True)
    speaker = db.get(SessionSpeaker, occurrence.speaker_id)
    assert speaker is not None  # the foreign key
    record = review(
        occurrence, speaker, user_id, action, body.reason if body else None, datetime.now(UTC)
    )
    if record is not None:
        db.add(record)
    db.commit()
    text = db.scalar(select(Segment.text).where(Segment.id == occurrence.segment_id))
    return occurrence_public(occurrence, speaker.label, text, storage, settings.media_url_ttl_s)


def _occurrence_of(
    db: DbDep, session_id: uuid.UUID, occurrence_id: uuid.UUID, *, lock: bool
) -> WordOccurrence:
    query = select(WordOccurrence).where(
        WordOccurrence.id == occurrence_id, WordOccurrence.session_id == session_id
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    occurrence = db.scalars(query).one_or_none()
    if occurrence is None:
        raise NotFound("occurrence not found", code="occurrence_not_found")
    return occurrence


def occurrence_public(
    o: WordOccurrence, label: str, text: str | None, storage: StorageDep, ttl: int
) -> OccurrencePublic:
    """The API's view of one occurrence row (``/occurrences`` lists these)."""
    return OccurrencePublic(
        id=o.id,
        speaker_id=o.speaker_id,
        speaker_label=label,
        word=o.word,
        start=o.start_s,
        end=o.end_s,
        text=text,
        heard=o.heard,
        source=o.source,
        rule=o.rule,
        dictionary_version=o.dictionary_version,
        score=o.score,
        clip_url=storage.url(o.clip_key, ttl) if o.clip_key else None,
        confidence=o.confidence,
        counted=o.counted,
        decision=o.decision,  # type: ignore[arg-type]  # the column only holds these
        decided_by=o.decided_by,
        decided_at=o.decided_at,
    )
