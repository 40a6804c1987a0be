"""Storage: the local disk implementation, and the Supabase adapter driven through the real
``supabase`` client against a loopback stand-in of the Storage REST API (Supabase itself is
out of reach here; the stand-in answers the way its API documents, errors included)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import jwt
import pytest

from storage import LocalStorage, ObjectNotFound, StorageError, SupabaseStorage, check_key


class _StorageApi(BaseHTTPRequestHandler):
    objects: ClassVar[dict[str, bytes]] = {}
    fail_with: ClassVar[int | None] = None
    PREFIX = "/storage/v1/object/"

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = {"statusCode": str(status), "error": code, "message": message}
        self._reply(status, json.dumps(body).encode())

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self) -> None:
        body = self._body()
        if self.fail_with:
            return self._error(self.fail_with, "failure", "induced failure")
        path = self.path.removeprefix(self.PREFIX)
        if path.startswith("sign/"):
            key = path.removeprefix("sign/").split("/", 1)[1]
            if key not in self.objects:
                return self._error(400, "not_found", "Object not found")
            return self._reply(
                200, json.dumps({"signedURL": f"/object/sign/b/{key}?token=t"}).encode()
            )
        if path.startswith("list/"):
            query = json.loads(body)
            folder = query["prefix"].rstrip("/") + "/"
            names = sorted(k.removeprefix(folder) for k in self.objects if k.startswith(folder))
            page = names[query["offset"] : query["offset"] + query["limit"]]
            entries = [{"name": n, "id": n} for n in page if "/" not in n]
            return self._reply(200, json.dumps(entries).encode())
        key = path.split("/", 1)[1]
        # multipart form: the object is the last part's payload
        self.objects[key] = body.split(b"\r\n\r\n")[-1].rsplit(b"\r\n--", 1)[0]
        return self._reply(200, json.dumps({"Key": f"b/{key}"}).encode())

    def do_GET(self) -> None:
        if self.fail_with:
            return self._error(self.fail_with, "failure", "induced failure")
        key = self.path.removeprefix(self.PREFIX).split("/", 1)[1]
        if key not in self.objects:
            return self._error(400, "not_found", "Object not found")
        return self._reply(200, self.objects[key], "application/octet-stream")

    def do_DELETE(self) -> None:
        for key in json.loads(self._body())["prefixes"]:
            self.objects.pop(key, None)
        self._reply(200, b"[]")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def supabase() -> Iterator[SupabaseStorage]:
    _StorageApi.objects, _StorageApi.fail_with = {}, None
    server = HTTPServer(("127.0.0.1", 0), _StorageApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    service_key = jwt.encode({"role": "service_role"}, "s" * 32)
    yield SupabaseStorage(f"http://127.0.0.1:{server.server_port}", service_key, "b")
    server.shutdown()


KEY = "sessions/0f5e/chunks/000001-abcdef"


def test_list_gives_the_objects_of_a_folder(supabase, tmp_path):
    for storage in (supabase, LocalStorage(tmp_path, b"k" * 32)):
        folder = "sessions/0f5e/chunks"
        keys = [f"{folder}/{n:06d}-abcdef" for n in range(3)]
        for key in [*keys, "sessions/0f5e/clips/speaker_00.ogg", "sessions/0f5f/chunks/x"]:
            storage.put(key, io.BytesIO(b"OggS"), "audio/ogg")
        assert storage.list(folder) == keys
        assert storage.list("sessions/9999/chunks") == []


def test_supabase_round_trip(supabase):
    supabase.put(KEY, io.BytesIO(b"OggS audio bytes"), "audio/ogg")
    with supabase.open(KEY) as stream:
        assert stream.read() == b"OggS audio bytes"
    assert "/object/sign/b/" in supabase.url(KEY, 60)
    supabase.check()
    supabase.delete(KEY)
    with pytest.raises(ObjectNotFound):
        supabase.open(KEY)


@pytest.mark.parametrize(("status", "transient"), [(500, True), (503, True), (403, False)])
def test_supabase_errors_are_sorted_for_retries(supabase, status, transient):
    _StorageApi.fail_with = status
    with pytest.raises(StorageError) as caught:
        supabase.put(KEY, io.BytesIO(b"x"))
    assert caught.value.transient is transient


def test_local_storage_round_trip_and_keys(tmp_path):
    storage = LocalStorage(tmp_path, b"k")
    storage.put(KEY, io.BytesIO(b"bytes"))
    with storage.open(KEY) as stream:
        assert stream.read() == b"bytes"
    assert not list(tmp_path.rglob(".upload-*"))  # written via a temp file, renamed into place
    storage.delete(KEY)
    with pytest.raises(ObjectNotFound):
        storage.open(KEY)
    for bad in ("../etc/passwd", "/abs", "sessions/../../x", "Sessions/A", ""):
        with pytest.raises(ValueError):
            check_key(bad)
