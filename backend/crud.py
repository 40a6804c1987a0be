"""Queries and writes the routes share. Nothing here commits: the request does."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import joinedload

import lifecycle
import voice_library
from backend.errors import Forbidden, NotFound
from models import (
    AudioChunk,
    ChunkHearingRow,
    ClaimType,
    Group,
    GroupMember,
    Profile,
    Session,
    SessionSpeaker,
    SessionStatus,
    SpeakerSuggestion,
    SpeakerVoiceRow,
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


HEARD_SAMPLE_RATE = 16_000  # chunk hearings count their chunk's decoded length at 16 kHz


@dataclass(frozen=True)
class HeardSoFar:
    """A live session's words as its chunk jobs heard them: (start, end, text) segments in
    session seconds, from the chunks heard in order from the first (``chunks``)."""

    chunks: int
    segments: list[tuple[float, float, str]]


def heard_so_far(db: DbSession, session_id: uuid.UUID) -> HeardSoFar:
    """What the chunk jobs have heard, before the finish decides who spoke: the hearings of
    chunks 0, 1, 2, ... up to the first one not heard yet (a later chunk's place in the
    session depends on the decoded lengths of all before it). An undecodable chunk adds no
    audio and no words. One query, without the stored voices."""
    rows = db.execute(
        select(
            ChunkHearingRow.chunk_number,
            ChunkHearingRow.samples,
            ChunkHearingRow.start_s,
            ChunkHearingRow.segments,
        )
        .where(ChunkHearingRow.session_id == session_id)
        .order_by(ChunkHearingRow.chunk_number)
    )
    segments: list[tuple[float, float, str]] = []
    at, heard = 0, 0
    for number, samples, start_s, stretch in rows:
        if number != heard:
            break
        offset = at / HEARD_SAMPLE_RATE + start_s
        segments.extend(
            (round(s["start"] + offset, 3), round(s["end"] + offset, 3), str(s["text"]).strip())
            for s in stretch
        )
        at += samples
        heard += 1
    return HeardSoFar(heard, segments)


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


# --- voiceprints and deletion (issue 17) --------------------------------------------------------


@dataclass(frozen=True)
class Suggested:
    """Whom a speaker sounds like, as the speakers list shows it."""

    user_id: uuid.UUID
    display_name: str | None
    score: float
    auto_claimed: bool


def suggestions(db: DbSession, session: Session) -> dict[uuid.UUID, Suggested]:
    """Speaker id → its suggestion, named as the group names the member; members who have
    left the group since are not suggested."""
    members = {m.user_id: m for m in members_of(db, session.group_id)}
    rows = db.scalars(select(SpeakerSuggestion).where(SpeakerSuggestion.session_id == session.id))
    return {
        s.speaker_id: Suggested(s.user_id, members[s.user_id].display_name, s.score, s.auto_claimed)
        for s in rows
        if s.user_id in members
    }


def has_voice(db: DbSession, speaker_id: uuid.UUID) -> bool:
    found = db.scalar(select(func.count()).where(SpeakerVoiceRow.speaker_id == speaker_id))
    return bool(found)


def release_claim(db: DbSession, speaker: SessionSpeaker) -> None:
    """The speaker is unclaimed again: its voice leaves the claimer's voiceprint, and a
    suggestion the claim undid (an auto-claim taken back) is dropped."""
    speaker.claimed_by = speaker.claimed_at = speaker.claim_type = None
    speaker.attributed_to_user_id = speaker.guest_name = None
    voice_library.forget_claim(db, speaker.id)
    db.execute(
        delete(SpeakerSuggestion).where(
            SpeakerSuggestion.speaker_id == speaker.id, SpeakerSuggestion.auto_claimed.is_(True)
        )
    )


def session_to_delete(db: DbSession, session_id: uuid.UUID, user_id: uuid.UUID) -> Session | None:
    """The session, locked, if the caller may delete it (they started it, or they are an
    admin of its group); None when it is already gone; 404 to a non-member, 403 to another
    member. The lock waits for a job that is saving results into it."""
    session = db.scalars(
        select(Session).where(Session.id == session_id).with_for_update()
    ).one_or_none()
    if session is None:
        return None
    member = db.get(GroupMember, (session.group_id, user_id))
    if member is None:
        raise NotFound("session not found", code="session_not_found")
    if session.started_by != user_id and member.role != "admin":
        raise Forbidden(
            "only whoever started the session or a group admin may delete it",
            code="not_allowed_to_delete",
        )
    return session


def delete_session(db: DbSession, session_id: uuid.UUID) -> None:
    """Delete the session's row: its chunks, speakers, segments, occurrences, voices and
    suggestions go with it (ON DELETE CASCADE). Voiceprints are the caller's to rebuild
    first (``voice_library.forget_session``)."""
    db.execute(
        delete(Session).where(Session.id == session_id).execution_options(synchronize_session=False)
    )


def set_remember_voice(db: DbSession, user: Profile, remember: bool) -> None:
    """Record the user's answer on keeping a voiceprint; a no deletes any kept so far."""
    user.remember_voice = remember
    if not remember:
        voice_library.forget_user(db, user.id)


def remove_member(db: DbSession, member: GroupMember) -> None:
    """Take the member out of the group (its leaderboard, its suggestions); when they were
    its last admin, the longest-standing member left becomes one."""
    group_id = member.group_id
    db.delete(member)
    db.flush()
    admins = db.scalar(
        select(func.count()).where(GroupMember.group_id == group_id, GroupMember.role == "admin")
    )
    if not admins:
        successor = db.scalars(
            select(GroupMember)
            .where(GroupMember.group_id == group_id)
            .order_by(GroupMember.joined_at, GroupMember.user_id)
            .limit(1)
        ).one_or_none()
        if successor is not None:
            successor.role = "admin"


def forget_user(db: DbSession, user: Profile) -> None:
    """ "Forget me": the user's voiceprints go, every claim they made is released (its counts
    return to an unclaimed speaker), they leave every group, and their profile is deleted (or,
    where groups or sessions they started still name them, emptied)."""
    voice_library.forget_user(db, user.id)
    claimed = (SessionSpeaker.claimed_by == user.id) | (
        SessionSpeaker.attributed_to_user_id == user.id
    )
    session_ids = sorted(set(db.scalars(select(SessionSpeaker.session_id).where(claimed))))
    sessions = db.scalars(
        select(Session).where(Session.id.in_(session_ids)).order_by(Session.id).with_for_update()
    )
    for session in sessions:
        for speaker in db.scalars(
            select(SessionSpeaker).where(claimed, SessionSpeaker.session_id == session.id)
        ):
            release_claim(db, speaker)
        lifecycle.unclaimed(session)
    db.execute(delete(SpeakerSuggestion).where(SpeakerSuggestion.user_id == user.id))
    for member in list(db.scalars(select(GroupMember).where(GroupMember.user_id == user.id))):
        remove_member(db, member)
    db.flush()
    referenced = db.scalar(select(func.count()).where(Group.created_by == user.id)) or db.scalar(
        select(func.count()).where(Session.started_by == user.id)
    )
    if referenced:
        user.display_name, user.remember_voice = None, None
    else:
        db.delete(user)
