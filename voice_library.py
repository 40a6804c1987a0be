"""A group's voice library in Postgres: the voiceprints kept from consented self-claims.

A voiceprint is derived data: per user and embedder, the seconds-weighted centroid of the
voices (``speaker_voices``) of the speakers they claimed as themselves while consenting
(``voiceprint_claims``). Every change of those claims (a claim, an unclaim, a deleted session,
a withdrawn consent) rebuilds it here, in the caller's transaction, so it never holds a voice
whose claim is gone. The API (claims, deletion) and the job (suggestions) both use this module.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session as DbSession

from models import GroupMember, SpeakerVoiceRow, Voiceprint, VoiceprintClaim

# a member's floor is read from at most this many of their latest claims: the lookup stays
# one bounded query per group (members x this many rows of one vector each)
FLOOR_CLAIMS = 50


def remember_claim(
    db: DbSession, speaker_id: uuid.UUID, session_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    """A consented self-claim: its speaker's voices join the user's voiceprints."""
    db.add(VoiceprintClaim(speaker_id=speaker_id, user_id=user_id, session_id=session_id))
    db.flush()
    rebuild(db, user_id)


def forget_claim(db: DbSession, speaker_id: uuid.UUID) -> None:
    """The claim is undone: its contribution leaves the claimer's voiceprints."""
    claim = db.get(VoiceprintClaim, speaker_id)
    if claim is not None:
        user_id = claim.user_id
        db.delete(claim)
        db.flush()
        rebuild(db, user_id)


def forget_session(db: DbSession, session_id: uuid.UUID) -> None:
    """The session goes: every voiceprint it contributed to is rebuilt without it."""
    claims = list(
        db.scalars(select(VoiceprintClaim).where(VoiceprintClaim.session_id == session_id))
    )
    db.execute(delete(VoiceprintClaim).where(VoiceprintClaim.session_id == session_id))
    db.flush()
    for user_id in sorted({c.user_id for c in claims}):
        rebuild(db, user_id)


def forget_user(db: DbSession, user_id: uuid.UUID) -> None:
    """Delete the user's voiceprints and the claims behind them, everywhere."""
    db.execute(delete(Voiceprint).where(Voiceprint.user_id == user_id))
    db.execute(delete(VoiceprintClaim).where(VoiceprintClaim.user_id == user_id))


def rebuild(db: DbSession, user_id: uuid.UUID) -> None:
    """Recompute the user's voiceprints (one per embedder) from their consented claims."""
    db.execute(delete(Voiceprint).where(Voiceprint.user_id == user_id))
    rows = db.execute(
        select(SpeakerVoiceRow, VoiceprintClaim.session_id)
        .join(VoiceprintClaim, VoiceprintClaim.speaker_id == SpeakerVoiceRow.speaker_id)
        .where(VoiceprintClaim.user_id == user_id)
        .order_by(SpeakerVoiceRow.speaker_id)
    )
    by_embedder: dict[str, list[tuple[SpeakerVoiceRow, uuid.UUID]]] = defaultdict(list)
    for voice, session_id in rows:
        by_embedder[voice.embedder].append((voice, session_id))
    now = datetime.now(UTC)
    for embedder, voices in by_embedder.items():
        embedding, seconds = centroid(
            [v.embedding for v, _ in voices], [v.seconds for v, _ in voices]
        )
        db.add(
            Voiceprint(
                user_id=user_id,
                embedder=embedder,
                embedding=list(embedding),
                seconds=seconds,
                sessions=len({s for _, s in voices}),
                claims=[str(v.speaker_id) for v, _ in voices],
                updated_at=now,
            )
        )
    db.flush()


def centroid(
    vectors: Sequence[Sequence[float]], seconds: Sequence[float]
) -> tuple[tuple[float, ...], float]:
    """The seconds-weighted mean of unit ``vectors``, scaled to unit length, and the seconds
    behind it. Plain Python: the API image has no numpy, and these are a few hundred floats."""
    mean = [
        sum(w * v[i] for v, w in zip(vectors, seconds, strict=True)) for i in range(len(vectors[0]))
    ]
    norm = max(math.sqrt(sum(x * x for x in mean)), 1e-12)
    return tuple(round(x / norm, 6) for x in mean), float(sum(seconds))


def group_voiceprints(
    db: DbSession, group_id: uuid.UUID, embedder: str
) -> dict[uuid.UUID, list[float]]:
    """The voiceprints in ``embedder``'s space of the group's members (and nobody else's)."""
    rows = db.execute(
        select(Voiceprint.user_id, Voiceprint.embedding)
        .join(GroupMember, GroupMember.user_id == Voiceprint.user_id)
        .where(GroupMember.group_id == group_id, Voiceprint.embedder == embedder)
        .order_by(Voiceprint.user_id)
    )
    return {user_id: list(embedding) for user_id, embedding in rows}


def claimed_voices(
    db: DbSession, group_id: uuid.UUID, embedder: str, per_member: int = FLOOR_CLAIMS
) -> dict[uuid.UUID, list[tuple[list[float], float]]]:
    """The voices in ``embedder``'s space behind each group member's voiceprint, as
    (embedding, seconds) per claim: the speakers they claimed as themselves with consent (any
    group's sessions, as the voiceprint has them), their latest ``per_member`` claims at most.
    One query."""
    latest = func.row_number().over(
        partition_by=VoiceprintClaim.user_id,
        order_by=(VoiceprintClaim.created_at.desc(), VoiceprintClaim.speaker_id),
    )
    claims = (
        select(
            VoiceprintClaim.user_id,
            SpeakerVoiceRow.speaker_id,
            SpeakerVoiceRow.embedding,
            SpeakerVoiceRow.seconds,
            latest.label("n"),
        )
        .join(SpeakerVoiceRow, SpeakerVoiceRow.speaker_id == VoiceprintClaim.speaker_id)
        .join(GroupMember, GroupMember.user_id == VoiceprintClaim.user_id)
        .where(GroupMember.group_id == group_id, SpeakerVoiceRow.embedder == embedder)
        .subquery()
    )
    rows = db.execute(
        select(claims.c.user_id, claims.c.speaker_id, claims.c.embedding, claims.c.seconds)
        .where(claims.c.n <= per_member)
        .order_by(claims.c.user_id, claims.c.speaker_id)
    )
    voices: dict[uuid.UUID, list[tuple[list[float], float]]] = defaultdict(list)
    for user_id, _, embedding, seconds in rows:
        voices[user_id].append((list(embedding), seconds))
    return dict(voices)


def cohort_voiceprints(
    db: DbSession, group_id: uuid.UUID, embedder: str, limit: int
) -> list[list[float]]:
    """A cohort for score normalisation: the ``limit`` most recently updated voiceprints in
    ``embedder``'s space of people who are not members of the group (never one of its own:
    they are who the group's scores are about). Only their statistics are used; nobody of
    another group is ever suggested."""
    members = select(GroupMember.user_id).where(GroupMember.group_id == group_id)
    rows = db.scalars(
        select(Voiceprint.embedding)
        .where(Voiceprint.embedder == embedder, Voiceprint.user_id.not_in(members))
        .order_by(Voiceprint.updated_at.desc(), Voiceprint.user_id)
        .limit(limit)
    )
    return [list(embedding) for embedding in rows]


def voiceprints_of(db: DbSession, user_id: uuid.UUID) -> Iterable[Voiceprint]:
    return db.scalars(
        select(Voiceprint).where(Voiceprint.user_id == user_id).order_by(Voiceprint.embedder)
    )
