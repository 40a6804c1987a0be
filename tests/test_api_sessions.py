"""The spine through the real API: Postgres built by Alembic, real Redis, files on disk."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from fastapi.testclient import TestClient
from rq import Queue

from backend.auth import issue_token
from backend.main import create_app
from tests.factories import Phone, ready_session
from tests.paths import CORPUS

WAV = CORPUS / "asr_en/pocketsphinx_librivox/sense_and_sensibility_01_austen_64kb-0870.wav"
WAV2 = CORPUS / "asr_en/pocketsphinx_librivox/sense_and_sensibility_01_austen_64kb-0880.wav"


COUNTS = {"SPEAKER_00": {"lah": 3, "walao": 1}, "SPEAKER_01": {"lah": 2, "sia": 4}}


def test_start_upload_end_enqueues_the_session(client, make_user, redis_conn, settings):
    user = make_user()
    phone = Phone(client, user.headers)
    _, session_id = phone.session()
    first = phone.upload(session_id, 0, WAV)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["chunk_number"] == 0 and len(body["sha256"]) == 64
    assert body["size_bytes"] == WAV.stat().st_size
    assert phone.upload(session_id, 1, WAV2).status_code == 201

    resp = client.post(
        f"/sessions/{session_id}/end", json={"num_speakers": 2}, headers=user.headers
    )
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"status": "processing"}

    queue = Queue(settings.queue_name, connection=redis_conn)
    assert queue.job_ids == [session_id]
    job = queue.fetch_job(session_id)
    assert job is not None
    assert job.func_name == "processor.process_session"
    assert job.args == (session_id,)
    assert job.timeout == max(settings.job_timeout_floor_s, 2 * 30 * settings.job_timeout_factor)

    status = client.get(f"/sessions/{session_id}/status", headers=user.headers).json()
    assert status["status"] == "processing" and status["progress"] == 0

    again = client.post(f"/sessions/{session_id}/end", headers=user.headers)
    assert again.status_code == 202
    assert queue.count == 1  # ending twice enqueues nothing new


def test_upload_is_idempotent_and_conflicts_on_other_bytes(client, make_user, settings):
    user = make_user()
    phone = Phone(client, user.headers)
    _, session_id = phone.session()
    assert phone.upload(session_id, 3, WAV).status_code == 201
    same = phone.upload(session_id, 3, WAV)
    assert same.status_code == 200
    other = phone.upload(session_id, 3, WAV2)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "chunk_conflict"
    stored = list((settings.storage_dir / "sessions" / session_id / "chunks").iterdir())
    assert len(stored) == 1 and stored[0].read_bytes() == WAV.read_bytes()


def test_upload_limits_and_formats(client, make_user, settings, tmp_path):
    user = make_user()
    phone = Phone(client, user.headers)
    _, session_id = phone.session()
    big = tmp_path / "big.wav"
    big.write_bytes(WAV.read_bytes()[:44] + b"\0" * (settings.max_upload_bytes + 1))
    too_large = phone.upload(session_id, 0, big)
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "payload_too_large"

    text = tmp_path / "notes.txt"
    text.write_text("definitely not audio " * 10)
    assert phone.upload(session_id, 0, text, "audio/wav").status_code == 415
    assert phone.upload(session_id, 0, WAV, "image/png").status_code == 415
    # one rule for a value out of range, either side: 422 validation_error
    for number in (-1, settings.max_chunk_number + 1):
        out_of_range = phone.upload(session_id, number, WAV)
        assert out_of_range.status_code == 422, number
        assert out_of_range.json()["error"]["code"] == "validation_error"


def test_upload_after_end_and_end_without_audio(client, make_user):
    user = make_user()
    phone = Phone(client, user.headers)
    _, session_id = phone.session()
    empty_end = client.post(f"/sessions/{session_id}/end", headers=user.headers)
    assert empty_end.status_code == 409
    assert empty_end.json()["error"]["code"] == "no_audio"
    assert phone.upload(session_id, 0, WAV).status_code == 201
    assert client.post(f"/sessions/{session_id}/end", headers=user.headers).status_code == 202
    late = phone.upload(session_id, 1, WAV2)
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "session_not_recording"


def test_speaker_hints_are_validated(client, make_user):
    user = make_user()
    phone = Phone(client, user.headers)
    _, session_id = phone.session()
    phone.upload(session_id, 0, WAV)
    bad = client.post(
        f"/sessions/{session_id}/end",
        json={"min_speakers": 4, "max_speakers": 2},
        headers=user.headers,
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("problem", ["missing", "expired", "forged", "audience", "garbage"])
def test_auth_failures_are_401(client, settings, problem):
    user_id = uuid.uuid4()
    now = int(time.time())
    claims = {"sub": str(user_id), "aud": "authenticated", "exp": now + 60}
    secret = settings.supabase_jwt_secret.get_secret_value()
    token = {
        "missing": None,
        "expired": jwt.encode({**claims, "exp": now - 10}, secret, algorithm="HS256"),
        "forged": jwt.encode(claims, "another-secret-of-enough-length-xx", algorithm="HS256"),
        "audience": jwt.encode({**claims, "aud": "anon"}, secret, algorithm="HS256"),
        "garbage": "not.a.jwt",
    }[problem]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = client.post("/groups", json={"name": "x"}, headers=headers)
    assert resp.status_code == 401
    assert set(resp.json()["error"]) == {"code", "message"}


def test_other_groups_sessions_are_404(client, make_user):
    owner, stranger = make_user(), make_user()
    _, session_id = Phone(client, owner.headers).session()
    for path in ("status", "speakers", "transcript"):
        resp = client.get(f"/sessions/{session_id}/{path}", headers=stranger.headers)
        assert resp.status_code == 404
        assert resp.json()["error"]["code"] == "session_not_found"
    assert Phone(client, stranger.headers).upload(session_id, 0, WAV).status_code == 404
    assert client.post(f"/sessions/{session_id}/end", headers=stranger.headers).status_code == 404


def test_members_can_be_added_and_listed(client, make_user):
    owner, friend, stranger = make_user(), make_user(), make_user()
    group_id = Phone(client, owner.headers).group()
    added = client.post(
        f"/groups/{group_id}/members",
        json={"user_id": str(friend.id), "display_name": "Wei Ling"},
        headers=owner.headers,
    )
    assert added.status_code == 201
    again = client.post(
        f"/groups/{group_id}/members", json={"user_id": str(friend.id)}, headers=owner.headers
    )
    assert again.status_code == 409
    detail = client.get(f"/groups/{group_id}", headers=friend.headers).json()
    assert {m["user_id"] for m in detail["members"]} == {str(owner.id), str(friend.id)}
    assert client.get(f"/groups/{group_id}", headers=stranger.headers).status_code == 404
    start = client.post("/sessions/start", json={"group_id": group_id}, headers=stranger.headers)
    assert start.status_code == 404


def test_your_groups_and_their_sessions_are_listed(client, make_user, settings):
    owner, friend, stranger = make_user(), make_user(), make_user()
    phone = Phone(client, owner.headers)
    first, second = phone.group(members=[friend.id]), phone.group()
    older, newer = phone.start(first), phone.start(first)
    ended = phone.upload(newer, 0, WAV), phone.end(newer, num_speakers=2)
    assert [r.status_code for r in ended] == [201, 202]

    mine = client.get("/groups", headers=owner.headers).json()["groups"]
    assert [g["id"] for g in mine] == [first, second]
    assert [g["id"] for g in client.get("/groups", headers=friend.headers).json()["groups"]] == [
        first
    ]
    assert client.get("/groups", headers=stranger.headers).json() == {"groups": []}

    listed = client.get(f"/groups/{first}/sessions", headers=friend.headers).json()["sessions"]
    assert [(s["id"], s["status"]) for s in listed] == [(newer, "processing"), (older, "recording")]
    assert listed[0]["progress"] == 0 and listed[0]["ended_at"] is not None
    assert listed[1]["ended_at"] is None and listed[1]["duration_seconds"] is None
    one = client.get(f"/groups/{first}/sessions?limit=1", headers=owner.headers).json()
    assert [s["id"] for s in one["sessions"]] == [newer]
    assert client.get(f"/groups/{second}/sessions", headers=owner.headers).json() == {
        "sessions": []
    }
    hidden = client.get(f"/groups/{first}/sessions", headers=stranger.headers)
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "group_not_found"
    too_many = client.get(f"/groups/{first}/sessions?limit=500", headers=owner.headers)
    assert too_many.status_code == 422


def test_claims_credit_counts_and_complete_the_session(client, make_user, settings):
    owner, friend = make_user(), make_user()
    _, session_id, (s0, s1) = ready_session(
        Phone(client, owner.headers), settings, COUNTS, members=[friend.id]
    )
    claim = client.post(
        f"/sessions/{session_id}/claim",
        json={"speaker_id": s0, "claim_type": "self"},
        headers=owner.headers,
    )
    assert claim.status_code == 200 and claim.json()["success"] is True
    double = client.post(
        f"/sessions/{session_id}/claim",
        json={"speaker_id": s0, "claim_type": "self"},
        headers=friend.headers,
    )
    assert double.status_code == 409
    second_self = client.post(
        f"/sessions/{session_id}/claim",
        json={"speaker_id": s1, "claim_type": "self"},
        headers=owner.headers,
    )
    assert second_self.status_code == 409
    no_name = client.post(
        f"/sessions/{session_id}/claim",
        json={"speaker_id": s1, "claim_type": "guest"},
        headers=friend.headers,
    )
    assert no_name.status_code == 422
    status = client.get(f"/sessions/{session_id}/status", headers=owner.headers).json()
    assert status["status"] == "ready_for_claiming"
    guest = client.post(
        f"/sessions/{session_id}/claim",
        json={"speaker_id": s1, "claim_type": "guest", "guest_name": "Uncle Tan"},
        headers=friend.headers,
    )
    assert guest.status_code == 200
    status = client.get(f"/sessions/{session_id}/status", headers=owner.headers).json()
    assert status["status"] == "completed"

    speakers = client.get(f"/sessions/{session_id}/speakers", headers=friend.headers).json()
    by_label = {s["speaker_label"]: s for s in speakers["speakers"]}
    assert by_label["SPEAKER_00"]["claimed_by"] == str(owner.id)
    assert by_label["SPEAKER_01"]["guest_name"] == "Uncle Tan"
    assert by_label["SPEAKER_01"]["word_counts"] == {"lah": 2, "sia": 4}


def test_leaderboard_sums_claimed_counts(client, make_user, settings):
    owner, friend = make_user(), make_user()
    group_id, session_id, (s0, s1) = ready_session(
        Phone(client, owner.headers), settings, COUNTS, members=[friend.id]
    )
    client.post(
        f"/sessions/{session_id}/claim",
        json={"speaker_id": s0, "claim_type": "self"},
        headers=owner.headers,
    )
    client.post(
        f"/sessions/{session_id}/claim",
        json={"speaker_id": s1, "claim_type": "self"},
        headers=friend.headers,
    )
    stats = client.get(f"/groups/{group_id}/stats", headers=owner.headers).json()
    board = {m["user_id"]: m for m in stats["members"]}
    assert board[str(owner.id)]["word_counts"] == {"lah": 3, "walao": 1}
    assert board[str(owner.id)]["total"] == 4
    assert board[str(friend.id)]["total"] == 6
    assert [m["user_id"] for m in stats["members"]] == [str(friend.id), str(owner.id)]

    undo = client.delete(f"/sessions/{session_id}/claim/{s1}", headers=friend.headers)
    assert undo.status_code == 200
    stats = client.get(f"/groups/{group_id}/stats", headers=owner.headers).json()
    board = {m["user_id"]: m for m in stats["members"]}
    assert board[str(friend.id)]["total"] == 0


def test_claims_wait_for_processing(client, make_user):
    user = make_user()
    _, session_id = Phone(client, user.headers).session()
    resp = client.post(
        f"/sessions/{session_id}/claim",
        json={"speaker_id": str(uuid.uuid4()), "claim_type": "self"},
        headers=user.headers,
    )
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "session_not_ready"


def test_health_reports_each_dependency(client):
    resp = client.get("/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "healthy"
    assert (body["database"], body["redis"], body["storage"]) == ("ok", "ok", "ok")


def test_health_and_routes_503_when_database_is_down(settings, make_user):
    down = settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"}
    )
    user = make_user()
    with TestClient(create_app(down), raise_server_exceptions=False) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["database"].startswith("error")
        resp = client.post("/groups", json={"name": "x"}, headers=user.headers)
        assert resp.status_code == 503
        assert resp.json()["error"]["code"] == "database_unavailable"
        assert "Traceback" not in resp.text


def test_token_helper_round_trips(settings):
    from backend.auth import decode_user_id

    user_id = uuid.uuid4()
    assert decode_user_id(issue_token(settings, user_id), settings) == user_id
