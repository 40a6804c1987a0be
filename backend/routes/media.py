"""Signed, expiring URLs for locally stored sample clips (Supabase signs its own)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.responses import MalformedRangeHeader

from backend.deps import SettingsDep, StorageDep
from backend.errors import NotFound
from backend.routes.responses import errors
from storage import LocalStorage, ObjectNotFound, media_signing_key, verify_media

router = APIRouter(tags=["media"])


class ClipFile(FileResponse):
    """A clip on disk, with its length and byte ranges. A malformed ``Range`` is ignored and the
    whole clip sent (RFC 9110 allows either) instead of Starlette's plain-text 400: the API
    never answers 400."""

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            return []


@router.get("/media/{key:path}", response_class=StreamingResponse, responses=errors(404))
def media(
    key: str,
    storage: StorageDep,
    settings: SettingsDep,
    expires: int = Query(description="Unix time after which the link is dead"),
    sig: str = Query(max_length=128),
) -> Response:
    """A stored clip, if the link was signed by us and has not expired. No auth header: the
    signature is the capability, so the app can hand the URL to an audio player."""
    if not verify_media(media_signing_key(settings), key, expires, sig):
        raise NotFound("link expired or invalid", code="media_not_found")
    try:
        if isinstance(storage, LocalStorage):
            # Length and byte ranges let a player show the clip's duration and seek: an Ogg's
            # duration is in its last page, which a browser fetches with a Range request
            # (without them, Chromium reports an infinite duration).
            return ClipFile(storage.file(key), media_type="audio/ogg")
        stream = storage.open(key)
    except (ObjectNotFound, ValueError) as exc:
        raise NotFound("media not found", code="media_not_found") from exc
    return StreamingResponse(stream, media_type="audio/ogg")
