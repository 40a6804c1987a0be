"""Groups, their members and the leaderboard."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.exc import IntegrityError

from backend import crud
from backend.deps import CurrentUser, DbDep
from backend.errors import Conflict, Forbidden, NotFound
from backend.routes.responses import errors
from backend.schemas import (
    GroupCreate,
    GroupDetail,
    GroupPublic,
    GroupSettings,
    GroupsPublic,
    GroupStats,
    LeaderboardEntry,
    MemberAdd,
    MemberPublic,
    SessionsPublic,
    SessionSummary,
)
from models import Group, GroupMember

router = APIRouter(prefix="/groups", tags=["groups"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(401, 422))
def create_group(body: GroupCreate, db: DbDep, user: CurrentUser) -> GroupPublic:
    """Create a group; the caller becomes its first member, and its admin."""
    group = Group(name=body.name, created_by=user.id)
    db.add(group)
    db.flush()
    db.add(GroupMember(group_id=group.id, user_id=user.id, role="admin"))
    db.commit()
    return GroupPublic(id=group.id, name=group.name)


@router.get("", responses=errors(401))
def list_groups(db: DbDep, user: CurrentUser) -> GroupsPublic:
    """The groups you belong to, in the order you joined them."""
    return GroupsPublic(
        groups=[GroupPublic(id=g.id, name=g.name) for g in crud.groups_of(db, user.id)]
    )


@router.post(
    "/{group_id}/members", status_code=status.HTTP_201_CREATED, responses=errors(401, 404, 409)
)
def add_member(group_id: uuid.UUID, body: MemberAdd, db: DbDep, user: CurrentUser) -> MemberPublic:
    """Add a user to the group (any member may add). ``display_name`` is a nickname in this
    group only; it never changes the user's own profile name."""
    crud.group_for_member(db, group_id, user.id)
    crud.ensure_profile(db, body.user_id)
    if crud.is_member(db, group_id, body.user_id):
        raise Conflict("user is already a member", code="already_member")
    member = GroupMember(group_id=group_id, user_id=body.user_id, nickname=body.display_name)
    db.add(member)
    try:
        db.commit()
    except IntegrityError as exc:
        raise Conflict("user is already a member", code="already_member") from exc
    return MemberPublic(user_id=member.user_id, display_name=member.display_name)


@router.get("/{group_id}", responses=errors(401, 404))
def get_group(group_id: uuid.UUID, db: DbDep, user: CurrentUser) -> GroupDetail:
    group = crud.group_for_member(db, group_id, user.id)
    return _detail(db, group)


def _detail(db: DbDep, group: Group) -> GroupDetail:
    members = [
        MemberPublic(user_id=m.user_id, display_name=m.display_name, role=m.role)  # type: ignore[arg-type]
        for m in crud.members_of(db, group.id)
    ]
    return GroupDetail(
        id=group.id, name=group.name, members=members, auto_claim_voices=group.auto_claim_voices
    )


@router.patch("/{group_id}", responses=errors(401, 403, 404, 422))
def update_group(
    group_id: uuid.UUID, body: GroupSettings, db: DbDep, user: CurrentUser
) -> GroupDetail:
    """An admin changes the group's settings: ``auto_claim_voices`` lets a very sure
    voiceprint match claim a speaker for its member at once (marked, and undoable)."""
    group = crud.group_for_member(db, group_id, user.id)
    _require_admin(db, group_id, user.id)
    group.auto_claim_voices = body.auto_claim_voices
    db.commit()
    return _detail(db, group)


@router.delete(
    "/{group_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(401, 403, 404),
)
def remove_member(
    group_id: uuid.UUID, user_id: uuid.UUID, db: DbDep, user: CurrentUser
) -> Response:
    """Leave the group (your own ``user_id``), or, as an admin, remove a member: they leave
    its leaderboard and its suggestions. Their claims stay on the sessions' speakers."""
    crud.group_for_member(db, group_id, user.id)
    if user_id != user.id:
        _require_admin(db, group_id, user.id)
    member = db.get(GroupMember, (group_id, user_id))
    if member is None:
        raise NotFound("member not found", code="member_not_found")
    crud.remove_member(db, member)
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _require_admin(db: DbDep, group_id: uuid.UUID, user_id: uuid.UUID) -> None:
    member = db.get(GroupMember, (group_id, user_id))
    if member is None or member.role != "admin":
        raise Forbidden("only a group admin may do this", code="not_group_admin")


@router.get("/{group_id}/sessions", responses=errors(401, 404, 422))
def list_sessions(
    group_id: uuid.UUID,
    db: DbDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SessionsPublic:
    """The group's most recently started sessions, newest first (``limit`` of them)."""
    crud.group_for_member(db, group_id, user.id)
    return SessionsPublic(
        sessions=[
            SessionSummary(
                id=s.id,
                status=s.status,
                progress=s.progress,
                stage=s.stage,
                started_at=s.started_at,
                ended_at=s.ended_at,
                duration_seconds=round(s.duration_s, 2) if s.duration_s is not None else None,
            )
            for s in crud.recent_sessions(db, group_id, limit)
        ]
    )


@router.get("/{group_id}/stats", responses=errors(401, 404))
def group_stats(group_id: uuid.UUID, db: DbDep, user: CurrentUser) -> GroupStats:
    """The leaderboard: every member's claimed target-word totals, highest first."""
    crud.group_for_member(db, group_id, user.id)
    totals = crud.leaderboard(db, group_id)
    entries = [
        LeaderboardEntry(
            user_id=m.user_id,
            display_name=m.display_name,
            total=sum(totals.get(m.user_id, {}).values()),
            word_counts=dict(sorted(totals.get(m.user_id, {}).items())),
        )
        for m in crud.members_of(db, group_id)
    ]
    entries.sort(key=lambda e: -e.total)
    return GroupStats(group_id=group_id, members=entries)
