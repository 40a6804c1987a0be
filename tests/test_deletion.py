"""Deleting leaves nothing behind: a session (even one being processed), a member leaving,
"forget me", and retention; on real Postgres, Redis and storage on disk. After each deletion
no storage object lies under the session's prefix and no row references it."""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from sqlalchemy import Column, create_engine, func, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

import processor
from config import Settings
from models import (
    Base,
    Profile,
    Segment,
    Session,
    SessionSpeaker,
    SessionStatus,
    Voiceprint,
    WordOccurrence,
)
from processing.retention import apply_retention, retention_due
from storage import Storage, create_storage, evidence_clip_key
from tests.factories import (
    Phone,
    give_voices,
    ready_session,
    voice_vectors,
    wav_chunks,
)
from tests.paths import CORPUS, REPO

SPEECH = CORPUS / "diarization" / "nemo_an4_diarize_test" / "an4_diarize_test.wav"
SHORT = REPO / "samples" / "chunk_002.wav"  # 10 s
LONG = "d1_bto_renovation.wav"  # in singlish_dev: 115 s, three voices
WORDS = {"SPEAKER_00": {"lah": 2}, "SPEAKER_01": {"meh": 1}}


def _files_under(settings: Settings, session_id: str) -> list[str]:
    folder = settings.storage_dir / "sessions" / session_id
    return sorted(str(p) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _rows_referencing(factory: sessionmaker[DbSession], session_id: str) -> dict[str, int]:
    """Per table, the rows whose ``session_id`` (or, for sessions, ``id``) is this session."""
    found = {}
    with factory() as db:
        for table in Base.metadata.sorted_tables:
            column: Column | None = table.c.get("session_id")
            if table.name == "sessions":
                column = table.c.id
            if column is None:
                continue
            count = db.scalar(select(func.count()).where(column == uuid.UUID(session_id)))
            if count:
                found[table.name] = count
    return found


def _processed(client, settings, phone: Phone, group_id: str) -> str:
    """A session with every kind of thing a session leaves: a real uploaded chunk, speakers
    with sample clips, a segment, occurrences with an evidence clip, voices."""
    session_id = phone.start(group_id)
    assert phone.upload(session_id, 0, SPEECH).status_code == 201
    storage = create_storage(settings)
    factory_engine = create_engine(settings.sqlalchemy_url)
    with DbSession(factory_engine) as db:
        session = db.get(Session, uuid.UUID(session_id))
        assert session is not None
        session.status, session.processed_at = SessionStatus.READY_FOR_CLAIMING, datetime.now(UTC)
        for label, words in WORDS.items():
            sample = f"sessions/{session_id}/clips/{label.lower()}.ogg"
            speaker = SessionSpeaker(session_id=session.id, label=label, sample_clip_key=sample)
            storage.put(sample, io.BytesIO(b"OggS"), "audio/ogg")
            db.add(speaker)
            db.flush()
            segment = Segment(
                session_id=session.id,
                speaker_id=speaker.id,
                start_s=1.0,
                end_s=2.0,
                text="ok lah",
                corrected_text="ok lah",
            )
            db.add(segment)
            db.flush()
            for n, word in enumerate(w for w, c in words.items() for _ in range(c)):
                key = evidence_clip_key(session.id, n + 1.0, n + 1.4)
                storage.put(key, io.BytesIO(b"OggS"), "audio/ogg")
                db.add(
                    WordOccurrence(
                        session_id=session.id,
                        speaker_id=speaker.id,
                        segment_id=segment.id,
                        word=word,
                        start_s=n + 1.0,
                        end_s=n + 1.4,
                        source="asr",
                        clip_key=key,
                    )
                )
        db.commit()
    factory_engine.dispose()
    give_voices(settings, session_id, dict(zip(WORDS, voice_vectors(2), strict=True)))
    return session_id


def _speaker_ids(client, user, session_id) -> list[str]:
    listed = client.get(f"/sessions/{session_id}/speakers", headers=user.headers).json()
    return [s["id"] for s in listed["speakers"]]


def test_deleting_a_session_leaves_nothing_behind(client, settings, make_user, session_factory):
    owner, member = make_user(), make_user()
    phone = Phone(client, owner.headers)
    group_id = phone.group([member.id])
    session_id = _processed(client, settings, phone, group_id)
    kept = _processed(client, settings, phone, group_id)  # the group's other session stays
    ana_speaker = _speaker_ids(client, owner, session_id)[0]
    claimed = client.post(
        f"/sessions/{session_id}/claim",
        json={"speaker_id": ana_speaker, "claim_type": "self", "remember_voice": True},
        headers=owner.headers,
    )
    assert claimed.json()["voiceprint_updated"] is True
    before = client.get(f"/groups/{group_id}/stats", headers=owner.headers).json()
    assert before["members"][0]["total"] == 2
    assert _files_under(settings, session_id) and _rows_referencing(session_factory, session_id)

    # a member who neither started it nor administers the group may not
    refused = client.delete(f"/sessions/{session_id}", headers=member.headers)
    assert refused.status_code == 403
    assert client.delete(f"/sessions/{session_id}", headers=owner.headers).status_code == 204

    assert _files_under(settings, session_id) == []
    assert _rows_referencing(session_factory, session_id) == {}
    with session_factory() as db:  # the voiceprint it fed is gone with it
        assert db.scalar(select(func.count()).select_from(Voiceprint)) == 0
    after = client.get(f"/groups/{group_id}/stats", headers=owner.headers).json()
    assert all(m["total"] == 0 for m in after["members"])
    assert client.get(f"/sessions/{session_id}/speakers", headers=owner.headers).status_code == 404
    # idempotent, and the group's other session untouched
    assert client.delete(f"/sessions/{session_id}", headers=owner.headers).status_code == 204
    assert _files_under(settings, kept) and "word_occurrences" in _rows_referencing(
        session_factory, kept
    )


def test_a_group_admin_may_delete_a_members_session(client, settings, make_user, session_factory):
    admin, member = make_user(), make_user()
    group_id = Phone(client, admin.headers).group([member.id])
    session_id = _processed(client, settings, Phone(client, member.headers), group_id)
    assert client.delete(f"/sessions/{session_id}", headers=admin.headers).status_code == 204
    assert _rows_referencing(session_factory, session_id) == {}
    assert _files_under(settings, session_id) == []


class DeletingStorage:
    """Real storage on disk that, when the job stores its first clip, has the user delete
    the session through the API: a deletion that lands while the job is writing."""

    def __init__(self, inner: Storage, delete_session) -> None:
        self.inner, self.delete_session, self.deleted = inner, delete_session, False

    def put(self, key, stream, content_type=None):
        if "/clips/" in key and not self.deleted:
            self.deleted = True
            assert self.delete_session().status_code == 204
        return self.inner.put(key, stream, content_type)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_deleting_while_processing_recreates_nothing(
    client, settings, make_user, session_factory, models, redis_conn
):
    owner = make_user()
    phone = Phone(client, owner.headers)
    session_id = phone.record([SPEECH])
    storage = DeletingStorage(
        create_storage(settings),
        lambda: client.delete(f"/sessions/{session_id}", headers=owner.headers),
    )
    pipeline = processor.Pipeline(settings, session_factory, storage, models, redis_conn)
    processor.run(uuid.UUID(session_id), pipeline)  # the job, as the worker runs it

    assert storage.deleted  # the deletion did land mid-job, as the clips were being written
    assert _rows_referencing(session_factory, session_id) == {}
    assert _files_under(settings, session_id) == []


def _job_status(redis_conn, session_id: str) -> JobStatus:
    return Job.fetch(session_id, connection=redis_conn).get_status()


def _wait(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"never happened within {timeout} s: {what}")


def _progress(settings, session_id: str) -> int:
    engine = create_engine(settings.sqlalchemy_url)
    with DbSession(engine) as db:
        session = db.get(Session, uuid.UUID(session_id))
        progress = 0 if session is None else session.progress
    engine.dispose()
    return progress


def test_deleting_a_queued_session_cancels_its_job(
    client, settings, make_user, session_factory, redis_conn
):
    owner = make_user()
    phone = Phone(client, owner.headers)
    queued = phone.record([SHORT])  # no worker: its job waits on the queue
    assert client.delete(f"/sessions/{queued}", headers=owner.headers).status_code == 204
    assert _job_status(redis_conn, queued) is JobStatus.CANCELED
    assert Queue(settings.queue_name, connection=redis_conn).count == 0
    assert _rows_referencing(session_factory, queued) == {}
    assert _files_under(settings, queued) == []


@pytest.mark.slow
def test_deleting_stops_the_running_job_of_a_real_worker(
    client, settings, make_user, session_factory, redis_conn, singlish_dev, tmp_path, spawn_worker
):
    owner = make_user()
    phone = Phone(client, owner.headers)
    running = phone.record(wav_chunks(singlish_dev / LONG, tmp_path), num_speakers=3)
    worker = spawn_worker()
    _wait(lambda: _progress(settings, running) >= 15, 180, "the job got into diarizing")
    assert client.delete(f"/sessions/{running}", headers=owner.headers).status_code == 204
    # RQ's stop-job command reached the job, which stopped at its next progress report
    # (STOPPED is only ever set for a job stopped on request; it is never retried)
    _wait(lambda: _job_status(redis_conn, running) is JobStatus.STOPPED, 60, "the job stopped")

    assert _rows_referencing(session_factory, running) == {}
    assert _files_under(settings, running) == []
    assert worker.poll() is None  # the worker lives on and takes the next session
    following = phone.record([SHORT])
    _wait(
        lambda: _row_status(session_factory, following) is not SessionStatus.PROCESSING,
        180,
        "the next session was processed",
    )
    assert _row_status(session_factory, following) is SessionStatus.READY_FOR_CLAIMING
    time.sleep(2)  # the reconciler runs every second: nothing brings the deleted ones back
    assert _rows_referencing(session_factory, running) == {}
    assert _files_under(settings, running) == []
    assert _job_status(redis_conn, running) is JobStatus.STOPPED


def _row_status(factory: sessionmaker[DbSession], session_id: str) -> SessionStatus | None:
    with factory() as db:
        session = db.get(Session, uuid.UUID(session_id))
        return None if session is None else session.status


def test_leaving_a_group_and_forget_me(client, settings, make_user, session_factory):
    admin, ana, bo = make_user(), make_user(), make_user()
    phone = Phone(client, admin.headers)
    ready = ready_session(phone, settings, WORDS, [ana.id, bo.id])
    give_voices(settings, ready.session_id, dict(zip(WORDS, voice_vectors(2), strict=True)))
    url = f"/sessions/{ready.session_id}/claim"
    client.post(
        url,
        json={"speaker_id": ready.speaker_ids[0], "claim_type": "self", "remember_voice": True},
        headers=ana.headers,
    )
    client.post(
        url,
        json={"speaker_id": ready.speaker_ids[1], "claim_type": "guest", "guest_name": "Dee"},
        headers=ana.headers,
    )
    status = client.get(f"/sessions/{ready.session_id}/status", headers=ana.headers).json()
    assert status["status"] == "completed"

    # only an admin removes others; anyone may leave
    members_url = f"/groups/{ready.group_id}/members"
    assert client.delete(f"{members_url}/{ana.id}", headers=bo.headers).status_code == 403
    assert client.delete(f"{members_url}/{bo.id}", headers=bo.headers).status_code == 204
    board = client.get(f"/groups/{ready.group_id}/stats", headers=ana.headers).json()["members"]
    assert str(bo.id) not in {m["user_id"] for m in board}
    assert client.get(f"/groups/{ready.group_id}", headers=bo.headers).status_code == 404

    assert client.delete("/me", headers=ana.headers).status_code == 204
    shown = client.get(f"/sessions/{ready.session_id}/speakers", headers=admin.headers).json()
    assert [s["claimed_by"] for s in shown["speakers"]] == [None, None]  # counts unclaimed again
    board = client.get(f"/groups/{ready.group_id}/stats", headers=admin.headers).json()["members"]
    assert [m["user_id"] for m in board] == [str(admin.id)]
    status = client.get(f"/sessions/{ready.session_id}/status", headers=admin.headers).json()
    assert status["status"] == "ready_for_claiming"
    with session_factory() as db:
        assert db.get(Profile, ana.id) is None
        assert db.scalar(select(func.count()).select_from(Voiceprint)) == 0

    # the last admin leaving hands the group to the longest-standing member
    assert client.post(members_url, json={"user_id": str(bo.id)}, headers=admin.headers).is_success
    assert client.delete(f"{members_url}/{admin.id}", headers=admin.headers).status_code == 204
    detail = client.get(f"/groups/{ready.group_id}", headers=bo.headers).json()
    assert [(m["user_id"], m["role"]) for m in detail["members"]] == [(str(bo.id), "admin")]


def test_retention_deletes_audio_then_clips_and_keeps_the_counts(
    client, settings, make_user, session_factory
):
    owner = make_user()
    phone = Phone(client, owner.headers)
    session_id = _processed(client, settings, phone, phone.group())
    now = datetime.now(UTC)
    off = apply_retention(session_factory, create_storage(settings), settings, now)
    assert off.chunks == off.clips == []  # both off by default
    settings.audio_retention_days, settings.clip_retention_days = 7, 30
    assert retention_due(session_factory, settings, now).chunks == []
    week = now + timedelta(days=8)
    due = retention_due(session_factory, settings, week)
    assert due.chunks == [uuid.UUID(session_id)] and due.clips == []
    apply_retention(session_factory, create_storage(settings), settings, week)
    left = _files_under(settings, session_id)
    assert left and not any("/chunks/" in f for f in left)
    assert "audio_chunks" not in _rows_referencing(session_factory, session_id)

    month = now + timedelta(days=31)
    done = apply_retention(session_factory, create_storage(settings), settings, month)
    assert done.clips == [uuid.UUID(session_id)]
    assert _files_under(settings, session_id) == []
    rows = _rows_referencing(session_factory, session_id)
    assert rows["word_occurrences"] == 3 and rows["segments"] == 2
    assert retention_due(session_factory, settings, month) == type(due)()
