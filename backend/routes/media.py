"""Signed, expiring URLs for locally stored sample clips (Supabase signs its own)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from backend.deps import SettingsDep, StorageDep
from backend.errors import NotFound
from backend.routes.responses import errors
from storage import ObjectNotFound, media_signing_key, verify_media

router = APIRouter(tags=["media"])


@router.get("/media/{key:path}", response_class=StreamingResponse, responses=errors(404))
def media(
    key: str,
    storage: StorageDep,
    settings: SettingsDep,
    expires: int = Query(description="Unix time after which the link is dead"),
    sig: str = Query(max_length=128),
) -> StreamingResponse:
    """A stored clip, if the link was signed by us and has not expired. No auth header: the
    signature is the capability, so the app can hand the URL to an audio player."""
    if not verify_media(media_signing_key(settings), key, expires, sig):
        raise NotFound("link expired or invalid", code="media_not_found")
    try:
        stream = storage.open(key)
    except (ObjectNotFound, ValueError) as exc:
        raise NotFound("media not found", code="media_not_found") from exc
    return StreamingResponse(stream, media_type="audio/ogg")
