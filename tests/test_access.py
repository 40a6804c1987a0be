"""Access control: JWT claims and keys, membership on every route, claims under concurrency,
signed expiring media URLs, and no usable placeholder secret in production."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from backend.main import create_app
from config import Settings
from tests.factories import FAKE_CLIP, Phone, ReadySession, ready_session


def test_production_refuses_the_placeholder_secret():
    with pytest.raises(ValidationError, match="SUPABASE_JWT_SECRET"):
        Settings(environment="production")
    Settings(environment="production", supabase_jwt_secret=SecretStr("a-real-secret-of-length-32"))


def test_issuer_is_checked_when_configured(settings, make_user):
    strict = settings.model_copy(update={"jwt_issuer": "https://proj.supabase.co/auth/v1"})
    secret = settings.supabase_jwt_secret.get_secret_value()
    claims = {"sub": str(uuid.uuid4()), "aud": "authenticated", "exp": int(time.time()) + 60}
    good = jwt.encode({**claims, "iss": strict.jwt_issuer}, secret, algorithm="HS256")
    bad = jwt.encode({**claims, "iss": "https://evil.example/auth/v1"}, secret, algorithm="HS256")
    with TestClient(create_app(strict)) as client:
        ok = client.post("/groups", json={"name": "a"}, headers={"Authorization": f"Bearer {good}"})
        assert ok.status_code == 201
        no = client.post("/groups", json={"name": "a"}, headers={"Authorization": f"Bearer {bad}"})
        assert no.status_code == 401


class _Jwks(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def test_asymmetric_tokens_verify_against_a_jwks_url(settings):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    _Jwks.body = json.dumps(
        {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}
    ).encode()
    server = HTTPServer(("127.0.0.1", 0), _Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with_jwks = settings.model_copy(
        update={"jwt_jwks_url": f"http://127.0.0.1:{server.server_port}/jwks.json"}
    )
    claims = {"sub": str(uuid.uuid4()), "aud": "authenticated", "exp": int(time.time()) + 60}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": "k1"})
    with TestClient(create_app(with_jwks)) as client:
        ok = client.post(
            "/groups", json={"name": "a"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert ok.status_code == 201
        no = client.post(
            "/groups", json={"name": "a"}, headers={"Authorization": f"Bearer {forged}"}
        )
        assert no.status_code == 401
    server.shutdown()


def _ready_session(client, settings: Settings, owner, members) -> ReadySession:
    """Two speakers with a sample clip each, no counts: what access is checked on."""
    silent: dict[str, dict[str, int]] = {"SPEAKER_00": {}, "SPEAKER_01": {}}
    return ready_session(Phone(client, owner.headers), settings, silent, [m.id for m in members])


def test_every_route_hides_other_groups(client, make_user, settings):
    owner, stranger = make_user(), make_user()
    group_id, session_id, speakers = _ready_session(client, settings, owner, [])
    for method, path, body in [
        ("GET", f"/groups/{group_id}", None),
        ("GET", f"/groups/{group_id}/stats", None),
        ("GET", f"/groups/{group_id}/sessions", None),
        ("POST", f"/groups/{group_id}/members", {"user_id": str(stranger.id)}),
        ("GET", f"/sessions/{session_id}/status", None),
        ("GET", f"/sessions/{session_id}/speakers", None),
        ("GET", f"/sessions/{session_id}/transcript", None),
        ("GET", f"/sessions/{session_id}/events", None),
        (
            "POST",
            f"/sessions/{session_id}/claim",
            {"speaker_id": speakers[0], "claim_type": "self"},
        ),
        ("DELETE", f"/sessions/{session_id}/claim/{speakers[0]}", None),
    ]:
        resp = client.request(method, path, json=body, headers=stranger.headers)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["error"]["code"].endswith("not_found")


def test_a_speaker_from_another_session_is_404(client, make_user, settings):
    owner = make_user()
    _, session_a, _ = _ready_session(client, settings, owner, [])
    _, _, speakers_b = _ready_session(client, settings, owner, [])
    resp = client.post(
        f"/sessions/{session_a}/claim",
        json={"speaker_id": speakers_b[0], "claim_type": "self"},
        headers=owner.headers,
    )
    assert resp.status_code == 404


def test_concurrent_claims_of_one_speaker_have_one_winner(live_server, make_user, settings):
    owner = make_user()
    members = [make_user() for _ in range(6)]
    with TestClient(create_app(settings)) as client:
        _, session_id, speakers = _ready_session(client, settings, owner, members)

    def claim(user) -> int:
        return httpx.post(
            f"{live_server}/sessions/{session_id}/claim",
            json={"speaker_id": speakers[0], "claim_type": "self"},
            headers=user.headers,
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(len(members)) as pool:
        codes = list(pool.map(claim, members))
    assert sorted(codes) == [200] + [409] * (len(members) - 1)


def test_concurrent_self_claims_by_one_user_claim_one_speaker(live_server, make_user, settings):
    owner = make_user()
    with TestClient(create_app(settings)) as client:
        _, session_id, speakers = _ready_session(client, settings, owner, [])

    def claim(speaker_id: str) -> int:
        return httpx.post(
            f"{live_server}/sessions/{session_id}/claim",
            json={"speaker_id": speaker_id, "claim_type": "self"},
            headers=owner.headers,
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(claim, speakers))
    assert sorted(codes) == [200, 409]


def test_clip_urls_are_signed_and_expire(client, make_user, settings, monkeypatch):
    owner = make_user()
    _, session_id, _ = _ready_session(client, settings, owner, [])
    speakers = client.get(f"/sessions/{session_id}/speakers", headers=owner.headers).json()
    url = speakers["speakers"][0]["sample_audio_url"]
    assert url.startswith("/media/sessions/") and "sig=" in url and "expires=" in url
    assert client.get(url).content == b"OggS fake clip"
    tampered = url.replace("speaker_00", "speaker_01")
    assert client.get(tampered).status_code == 404
    forged_key = url.split("?")[0].replace("/media/", "/media/../../etc/") + "?" + url.split("?")[1]
    assert client.get(forged_key).status_code == 404
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + settings.media_url_ttl_s + 1)
    assert client.get(url).status_code == 404


def test_clips_are_served_with_length_and_ranges(client, make_user, settings):
    """A browser reads an Ogg clip's duration from its last page with a Range request; without
    ranges Chromium's player says the clip is endless and cannot seek."""
    owner = make_user()
    _, session_id, _ = _ready_session(client, settings, owner, [])
    speakers = client.get(f"/sessions/{session_id}/speakers", headers=owner.headers).json()
    url = speakers["speakers"][0]["sample_audio_url"]
    whole = client.get(url)
    assert whole.headers["content-length"] == str(len(FAKE_CLIP))
    assert whole.headers["accept-ranges"] == "bytes"
    tail = client.get(url, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == FAKE_CLIP[-5:]
    size = len(FAKE_CLIP)
    assert tail.headers["content-range"] == f"bytes {size - 5}-{size - 1}/{size}"
    for malformed in ("pages=1-2", "bytes=5-2", "bytes"):
        ignored = client.get(url, headers={"Range": malformed})
        assert ignored.status_code == 200 and ignored.content == FAKE_CLIP, malformed
