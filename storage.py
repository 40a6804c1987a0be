"""Object storage for audio chunks and sample clips: local disk (default) or Supabase Storage.

Keys are built here from ids the backend generated (:func:`chunk_key`, :func:`clip_key`);
no path from a request ever reaches the file system. Local-disk URLs are served by the API
under ``/media/{key}`` and carry an HMAC signature with an expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlencode

from config import Settings

_KEY = re.compile(r"^[a-z0-9][a-z0-9_\-]*(/[a-z0-9][a-z0-9_\-.]*)*$")
_COPY_BUFFER = 1024 * 1024
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class StorageError(Exception):
    """A storage operation failed; ``transient`` says whether retrying may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class ObjectNotFound(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no stored object at {key!r}", transient=False)


def chunk_key(session_id: uuid.UUID, chunk_number: int, sha256: str) -> str:
    """Where a chunk's bytes live. The hash in the key makes concurrent uploads of different
    bytes for one chunk number write different objects, so the loser can delete its own."""
    return f"{chunk_folder(session_id)}/{chunk_number:06d}-{sha256[:16]}"


def chunk_folder(session_id: uuid.UUID) -> str:
    return f"sessions/{session_id}/chunks"


def session_folders(session_id: uuid.UUID) -> list[str]:
    """Every folder that holds a session's objects: what deleting the session empties."""
    prefix = f"sessions/{session_id}"
    return [chunk_folder(session_id), f"{prefix}/clips", f"{prefix}/evidence"]


def delete_session_objects(storage: Storage, session_id: uuid.UUID) -> list[str]:
    """Delete every object of the session (chunks, sample and evidence clips); the keys."""
    deleted = []
    for folder in session_folders(session_id):
        for key in storage.list(folder):
            storage.delete(key)
            deleted.append(key)
    return deleted


def clip_key(session_id: uuid.UUID, speaker_label: str) -> str:
    return f"sessions/{session_id}/clips/{speaker_label.lower()}.ogg"


def evidence_clip_key(session_id: uuid.UUID, start_s: float, end_s: float) -> str:
    """Where the clip of a counted word spoken at ``start_s``-``end_s`` lives. The key is the
    span, so a recount finds the clip an unchanged occurrence already has."""
    return (
        f"sessions/{session_id}/evidence/{round(start_s * 1000):09d}-{round(end_s * 1000):09d}.ogg"
    )


def check_key(key: str) -> str:
    """Refuse anything that is not a key this module could have built."""
    if not _KEY.match(key) or ".." in key:
        raise ValueError(f"invalid storage key {key!r}")
    return key


class Storage(Protocol):
    """Where chunks and clips live. Keys are built by this module; ``put`` replaces an object
    whole (a reader never sees half of one); ``delete`` of a missing key is not an error;
    ``url`` is a link a phone can play until ``ttl_s`` passes; ``check`` proves the backend
    answers (health). Errors are :class:`StorageError`, with ``transient`` set when retrying
    may help."""

    def put(self, key: str, stream: BinaryIO, content_type: str | None = None) -> None: ...
    def open(self, key: str) -> BinaryIO: ...
    def delete(self, key: str) -> None: ...
    def list(self, folder: str) -> list[str]:
        """The keys of the objects directly in ``folder`` (a key prefix without the slash)."""
        ...

    def url(self, key: str, ttl_s: int) -> str: ...
    def check(self) -> None: ...


@dataclass(frozen=True)
class LocalStorage:
    """Files under ``root``; writes go to a temporary file renamed into place (atomic)."""

    root: Path
    signing_key: bytes
    base_url: str = ""

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def file(self, key: str) -> Path:
        """The file that holds ``key``, for a server that sends files itself (with ranges)."""
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path

    def put(self, key: str, stream: BinaryIO, content_type: str | None = None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(stream, out, _COPY_BUFFER)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise ObjectNotFound(key) from exc

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, folder: str) -> list[str]:
        directory = self._path(folder)
        if not directory.is_dir():
            return []
        # dot files are uploads still being written (see put)
        return sorted(
            f"{folder}/{p.name}" for p in directory.iterdir() if p.is_file() and p.name[0] != "."
        )

    def url(self, key: str, ttl_s: int) -> str:
        expires = int(time.time()) + ttl_s
        query = urlencode({"expires": expires, "sig": sign_media(self.signing_key, key, expires)})
        return f"{self.base_url}/media/{check_key(key)}?{query}"

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.root):
            pass


def sign_media(signing_key: bytes, key: str, expires: int) -> str:
    return hmac.new(signing_key, f"{key}:{expires}".encode(), hashlib.sha256).hexdigest()


def verify_media(signing_key: bytes, key: str, expires: int, sig: str) -> bool:
    """True when ``sig`` was made by :meth:`LocalStorage.url` for ``key`` and has not expired."""
    if expires < time.time() or not _HEX_DIGEST.fullmatch(sig):
        return False
    return hmac.compare_digest(sign_media(signing_key, key, expires), sig)


class SupabaseStorage:
    """A Supabase Storage bucket via the ``supabase`` package (the ``supabase`` extra).

    The client's errors are sorted for the worker's retry logic: a missing object is
    :class:`ObjectNotFound`, other 4xx answers are permanent, 5xx and network errors transient.
    """

    def __init__(self, url: str, service_key: str, bucket: str) -> None:
        from supabase import create_client  # optional dependency

        self._bucket = create_client(url, service_key).storage.from_(bucket)

    def put(self, key: str, stream: BinaryIO, content_type: str | None = None) -> None:
        options = {"content-type": content_type or "application/octet-stream", "upsert": "true"}
        with _sorted_errors(key):
            self._bucket.upload(check_key(key), stream.read(), options)  # type: ignore[arg-type]

    def open(self, key: str) -> BinaryIO:
        with _sorted_errors(key):
            data = self._bucket.download(check_key(key))
        spooled = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (caller closes)
        spooled.write(data)
        spooled.seek(0)
        return spooled  # type: ignore[return-value]

    def delete(self, key: str) -> None:
        with _sorted_errors(key):
            self._bucket.remove([check_key(key)])

    def list(self, folder: str) -> list[str]:
        keys: list[str] = []
        page, offset = 1000, 0
        while True:
            with _sorted_errors(folder):
                entries = self._bucket.list(check_key(folder), {"limit": page, "offset": offset})
            # folders come back with no id; only objects have one
            keys += [f"{folder}/{e['name']}" for e in entries if e.get("id")]
            offset += len(entries)
            if len(entries) < page:
                return keys

    def url(self, key: str, ttl_s: int) -> str:
        with _sorted_errors(key):
            signed = self._bucket.create_signed_url(check_key(key), ttl_s)
        return str(signed.get("signedURL") or signed.get("signedUrl"))

    def check(self) -> None:
        with _sorted_errors("(bucket)"):
            self._bucket.list(options={"limit": 1})


@contextmanager
def _sorted_errors(key: str) -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:  # storage3 raises StorageApiError, httpx its transport errors
        status = _http_status(exc)
        if status in (400, 404) and "not found" in str(exc).lower():
            raise ObjectNotFound(key) from exc
        transient = status is None or status >= 500 or status == 429
        raise StorageError(
            f"storage request for {key!r} failed: {exc}", transient=transient
        ) from exc


def _http_status(exc: Exception) -> int | None:
    status = getattr(exc, "status", None) or getattr(
        getattr(exc, "response", None), "status_code", None
    )
    try:
        return int(status) if status is not None else None
    except (TypeError, ValueError):
        return None


def media_signing_key(settings: Settings) -> bytes:
    """A key for media URLs, derived from the JWT secret so there is one secret to manage."""
    secret = settings.supabase_jwt_secret.get_secret_value().encode()
    return hashlib.sha256(b"lahstats-media:" + secret).digest()


def create_storage(settings: Settings) -> Storage:
    if settings.storage_backend == "supabase":
        if not settings.supabase_url or not settings.supabase_service_key:
            raise ValueError("STORAGE_BACKEND=supabase needs SUPABASE_URL and SUPABASE_SERVICE_KEY")
        return SupabaseStorage(
            settings.supabase_url,
            settings.supabase_service_key.get_secret_value(),
            settings.supabase_bucket,
        )
    return LocalStorage(settings.storage_dir, media_signing_key(settings), settings.public_base_url)


@contextmanager
def opened(storage: Storage, key: str) -> Iterator[BinaryIO]:
    stream = storage.open(key)
    try:
        yield stream
    finally:
        stream.close()
