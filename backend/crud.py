"""Queries and writes the routes share. Nothing here commits: the request does."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import joinedload

from backend.errors import NotFound
from models import (
    AudioChunk,
    ClaimType,
    Group,
    GroupMember,
    Profile,
    Session,
    SessionSpeaker,
    SessionStatus,
    WordOccurrence,
)


def ensure_profile(db: DbSession, user_id: uuid.UUID) -> Profile:
    """The profile for ``user_id``, inserted if new (safe under concurrent first requests).
    Only its owner names it (``PATCH /me``)."""
    insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.execute(
        insert(Profile)
        .values(id=user_id, created_at=datetime.now(UTC))
        .on_conflict_do_nothing(index_elements=["id"])
    )
    profile = db.get(Profile, user_id)
    assert profile is not None
    return profile


def is_member(db: DbSession, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    return db.get(GroupMember, (group_id, user_id)) is not None


def group_for_member(db: DbSession, group_id: uuid.UUID, user_id: uuid.UUID) -> Group:
    """The group, if the user belongs to it; otherwise 404 (never reveal that it exists)."""
    group = db.get(Group, group_id)
    if group is None or not is_member(db, group_id, user_id):
        raise NotFound("group not found", code="group_not_found")
    return group


def session_for_member(
    db: DbSession, session_id: uuid.UUID, user_id: uuid.UUID, *, for_update: bool = False
) -> Session:
    """The session, if the user belongs to its group; otherwise 404. One query: the session
    joined to the caller's membership row."""
    query = (
        select(Session)
        .join(
            GroupMember,
            (GroupMember.group_id == Session.group_id) & (GroupMember.user_id == user_id),
        )
        .where(Session.id == session_id)
    )
    if for_update:
        # populate_existing: re-read the locked row even if this session already loaded it
        query = query.with_for_update(of=Session).execution_options(populate_existing=True)
    session = db.scalars(query).one_or_none()
    if session is None:
        raise NotFound("session not found", code="session_not_found")
    return session


def groups_of(db: DbSession, user_id: uuid.UUID) -> list[Group]:
    """The groups the user belongs to, in the order they joined them."""
    return list(
        db.scalars(
            select(Group)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.user_id == user_id)
            .order_by(GroupMember.joined_at, Group.id)
        )
    )


def recent_sessions(db: DbSession, group_id: uuid.UUID, limit: int) -> list[Session]:
    """The group's ``limit`` most recently started sessions, newest first."""
    return list(
        db.scalars(
            select(Session)
            .where(Session.group_id == group_id)
            .order_by(Session.started_at.desc(), Session.id)
            .limit(limit)
        )
    )


def members_of(db: DbSession, group_id: uuid.UUID) -> list[GroupMember]:
    """The group's members in joining order, their profiles loaded."""
    return list(
        db.scalars(
            select(GroupMember)
            .options(joinedload(GroupMember.profile))
            .where(GroupMember.group_id == group_id)
            .order_by(GroupMember.joined_at)
        )
    )


def chunk_by_number(db: DbSession, session_id: uuid.UUID, chunk_number: int) -> AudioChunk | None:
    return db.scalars(
        select(AudioChunk).where(
            AudioChunk.session_id == session_id, AudioChunk.chunk_number == chunk_number
        )
    ).one_or_none()


def chunk_key_referenced(db: DbSession, key: str) -> bool:
    return db.scalar(select(func.count()).where(AudioChunk.storage_key == key)) != 0


def chunk_count(db: DbSession, session_id: uuid.UUID) -> int:
    return db.scalar(select(func.count()).where(AudioChunk.session_id == session_id)) or 0


def speaker_word_counts(db: DbSession, speaker_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict]:
    """Speaker → word → count, derived from the speakers' counted occurrences (the evidence
    rows; "possible" and disputed ones are not counted)."""
    counts: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    rows = db.execute(
        select(WordOccurrence.speaker_id, WordOccurrence.word, func.count())
        .where(WordOccurrence.speaker_id.in_(speaker_ids), WordOccurrence.counted.is_(True))
        .group_by(WordOccurrence.speaker_id, WordOccurrence.word)
        .order_by(WordOccurrence.word)
    )
    for speaker_id, word, count in rows:
        counts[speaker_id][word] = int(count)
    return counts


def claim_speaker(
    db: DbSession,
    speaker: SessionSpeaker,
    claimer: uuid.UUID,
    claim_type: ClaimType,
    guest_name: str | None,
) -> bool:
    """Atomically mark an unclaimed speaker as claimed; False if someone got there first."""
    result = db.execute(
        update(SessionSpeaker)
        .where(SessionSpeaker.id == speaker.id, SessionSpeaker.claimed_by.is_(None))
        .values(
            claimed_by=claimer,
            claimed_at=datetime.now(UTC),
            claim_type=claim_type,
            guest_name=guest_name,
            attributed_to_user_id=claimer if claim_type is ClaimType.SELF else None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def unclaimed_speakers(db: DbSession, session_id: uuid.UUID) -> int:
    return (
        db.scalar(
            select(func.count()).where(
                SessionSpeaker.session_id == session_id, SessionSpeaker.claimed_by.is_(None)
            )
        )
        or 0
    )


def has_self_claim(db: DbSession, session_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    found = db.scalar(
        select(func.count()).where(
            SessionSpeaker.session_id == session_id,
            SessionSpeaker.claimed_by == user_id,
            SessionSpeaker.claim_type == ClaimType.SELF,
        )
    )
    return bool(found)


def leaderboard(db: DbSession, group_id: uuid.UUID) -> dict[uuid.UUID, dict[str, int]]:
    """Per member, per word: how often they said it in the group's sessions, counting the
    counted occurrences of every speaker they claimed as themselves."""
    totals: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    user = SessionSpeaker.attributed_to_user_id
    rows = db.execute(
        select(user, WordOccurrence.word, func.count())
        .join(SessionSpeaker, SessionSpeaker.id == WordOccurrence.speaker_id)
        .join(Session, Session.id == SessionSpeaker.session_id)
        .where(
            Session.group_id == group_id,
            SessionSpeaker.claim_type == ClaimType.SELF,
            WordOccurrence.counted.is_(True),
        )
        .group_by(user, WordOccurrence.word)
    )
    for user_id, word, count in rows:
        if user_id is not None:
            totals[user_id][word] = int(count)
    return totals


def claimable(session: Session) -> bool:
    return session.status in (SessionStatus.READY_FOR_CLAIMING, SessionStatus.COMPLETED)
