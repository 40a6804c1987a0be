"""The caller's own profile: the name the user gives themselves (a name another member types
when adding them is only a nickname in that group)."""

from __future__ import annotations

from fastapi import APIRouter

from backend.deps import CurrentUser, DbDep
from backend.routes.responses import errors
from backend.schemas import ProfilePublic, ProfileUpdate

router = APIRouter(prefix="/me", tags=["me"])


@router.get("", responses=errors(401))
def read_me(user: CurrentUser) -> ProfilePublic:
    return ProfilePublic(user_id=user.id, display_name=user.display_name)


@router.patch("", responses=errors(401, 422))
def update_me(body: ProfileUpdate, db: DbDep, user: CurrentUser) -> ProfilePublic:
    """Set your own display name, shown in every group you belong to."""
    user.display_name = body.display_name
    db.commit()
    return ProfilePublic(user_id=user.id, display_name=user.display_name)
