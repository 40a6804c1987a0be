"""The caller's own profile: the name the user gives themselves (a name another member types
when adding them is only a nickname in that group), their voiceprint and its consent, and
"forget me"."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

import voice_library
from backend import crud
from backend.deps import CurrentUser, DbDep
from backend.routes.responses import errors
from backend.schemas import (
    ProfilePublic,
    ProfileUpdate,
    VoiceprintConsent,
    VoiceprintPublic,
    VoiceprintSpace,
)
from models import Profile

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


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401))
def forget_me(db: DbDep, user: CurrentUser) -> Response:
    """Forget me: your voiceprint is deleted, every claim you made is released (its counts
    go back to an unclaimed speaker), you leave every group, and your profile is deleted.
    Sessions you started stay with their groups (their admins may delete them)."""
    crud.forget_user(db, user)
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/voiceprint", responses=errors(401))
def read_voiceprint(db: DbDep, user: CurrentUser) -> VoiceprintPublic:
    """Whether a voiceprint of you is kept, from how many sessions, and since when."""
    return _voiceprint(db, user)


@router.patch("/voiceprint", responses=errors(401, 422))
def set_voiceprint_consent(
    body: VoiceprintConsent, db: DbDep, user: CurrentUser
) -> VoiceprintPublic:
    """Allow or refuse a voiceprint. Refusing deletes the one kept, at once; allowing keeps
    one from your next self-claims (the app also asks on your first self-claim)."""
    crud.set_remember_voice(db, user, body.remember_voice)
    db.commit()
    return _voiceprint(db, user)


@router.delete("/voiceprint", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401))
def delete_voiceprint(db: DbDep, user: CurrentUser) -> Response:
    """Delete your voiceprint everywhere, at once, and keep none from now on (turn
    ``remember_voice`` on again to start a new one)."""
    voice_library.forget_user(db, user.id)
    user.remember_voice = False
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _voiceprint(db: DbDep, user: Profile) -> VoiceprintPublic:
    spaces = [
        VoiceprintSpace(
            embedder=v.embedder,
            sessions=v.sessions,
            seconds=round(v.seconds, 1),
            updated_at=v.updated_at,
        )
        for v in voice_library.voiceprints_of(db, user.id)
    ]
    newest = max(spaces, key=lambda v: v.updated_at, default=None)
    return VoiceprintPublic(
        remember_voice=user.remember_voice,
        exists=bool(spaces),
        sessions=newest.sessions if newest else 0,
        updated_at=newest.updated_at if newest else None,
        voiceprints=spaces,
    )
