"""The operator CLI against real Postgres and Redis: each command does what it says."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from rq import Queue
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session as DbSession
from typer.testing import CliRunner

from backend import crud
from backend.auth import decode_user_id
from cli import app
from models import (
    AudioChunk,
    ClaimType,
    Segment,
    Session,
    SessionSpeaker,
    SessionStatus,
    WordOccurrence,
)
from tests.factories import group_session

runner = CliRunner()


@pytest.fixture
def env(settings, monkeypatch):
    """Point the CLI (which reads Settings from the environment) at this test's services."""
    for name, value in {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "QUEUE_NAME": settings.queue_name,
        "DATA_DIR": str(settings.data_dir),
        "ENVIRONMENT": "test",
    }.items():
        monkeypatch.setenv(name, value)
    return settings


def _session(settings, status: SessionStatus, texts: dict[str, list[str]] | None = None):
    """A session with speakers and segments as a worker would leave it."""
    engine = create_engine(settings.sqlalchemy_url)
    with DbSession(engine) as db:
        session = group_session(
            db,
            status,
            duration_s=30.0,
            attempts=3 if status is SessionStatus.FAILED else 0,
            error_message="diarizing failed: boom" if status is SessionStatus.FAILED else None,
        )
        # the chunk row a processed session keeps (its object is not needed here)
        db.add(
            AudioChunk(
                session_id=session.id,
                chunk_number=0,
                storage_key=f"sessions/{session.id}/chunks/000000-0",
                sha256="0" * 64,
                size_bytes=1,
            )
        )
        for i, (label, lines) in enumerate((texts or {}).items()):
            speaker = SessionSpeaker(session_id=session.id, label=label)
            db.add(speaker)
            db.flush()
            for j, text in enumerate(lines):
                db.add(
                    Segment(
                        session_id=session.id,
                        speaker_id=speaker.id,
                        start_s=10 * i + j,
                        end_s=10 * i + j + 1,
                        text=text,
                        corrected_text=text,
                    )
                )
        db.commit()
        ids = (session.id, session.started_by)
    engine.dispose()
    return ids


def test_token_prints_a_valid_token(env):
    user_id = uuid.uuid4()
    result = runner.invoke(app, ["token", str(user_id)])
    assert result.exit_code == 0, result.output
    assert decode_user_id(result.output.strip(), env) == user_id


def test_requeue_failed_gives_fresh_attempts(env, redis_conn):
    failed, _ = _session(env, SessionStatus.FAILED)
    done, _ = _session(env, SessionStatus.READY_FOR_CLAIMING)
    result = runner.invoke(app, ["requeue-failed"])
    assert result.exit_code == 0, result.output
    assert "requeued 1 failed sessions" in result.output
    assert Queue(env.queue_name, connection=redis_conn).job_ids == [str(failed)]
    engine = create_engine(env.sqlalchemy_url)
    with DbSession(engine) as db:
        session = db.get(Session, failed)
        assert session is not None
        assert (session.status, session.attempts, session.error_message) == (
            SessionStatus.PROCESSING,
            0,
            None,
        )
        assert db.get(Session, done).status is SessionStatus.READY_FOR_CLAIMING  # type: ignore[union-attr]
    engine.dispose()


def test_reprocess_with_a_speaker_count(env, redis_conn):
    session_id, _ = _session(env, SessionStatus.READY_FOR_CLAIMING, {"SPEAKER_00": ["hello"]})
    result = runner.invoke(app, ["reprocess", str(session_id), "--num-speakers", "3"])
    assert result.exit_code == 0, result.output
    assert Queue(env.queue_name, connection=redis_conn).job_ids == [str(session_id)]
    engine = create_engine(env.sqlalchemy_url)
    with DbSession(engine) as db:
        session = db.get(Session, session_id)
        assert session is not None
        assert session.status is SessionStatus.PROCESSING and session.num_speakers == 3
    engine.dispose()


def test_reprocess_takes_claimed_sessions_too(env, redis_conn):
    """Claims no longer block processing again: the finish keeps those still in place
    (tests/test_live_sessions.py runs one through)."""
    session_id, user_id = _session(env, SessionStatus.COMPLETED, {"SPEAKER_00": ["hello"]})
    engine = create_engine(env.sqlalchemy_url)
    with DbSession(engine) as db:
        speaker = db.scalars(select(SessionSpeaker)).one()
        speaker.claimed_by, speaker.claim_type = user_id, ClaimType.SELF
        db.commit()
    engine.dispose()
    result = runner.invoke(app, ["reprocess", str(session_id), "--num-speakers", "2"])
    assert result.exit_code == 0, result.output
    assert Queue(env.queue_name, connection=redis_conn).job_ids == [str(session_id)]


def test_recount_reapplies_the_dictionary_and_updates_claimed_totals(env, tmp_path, monkeypatch):
    session_id, user_id = _session(
        env,
        SessionStatus.COMPLETED,
        {"SPEAKER_00": ["While up, so late la", "voila so crowded"], "SPEAKER_01": ["okay"]},
    )
    engine = create_engine(env.sqlalchemy_url)
    with DbSession(engine) as db:
        speaker = db.scalars(
            select(SessionSpeaker).where(SessionSpeaker.label == "SPEAKER_00")
        ).one()
        speaker.claimed_by = speaker.attributed_to_user_id = user_id
        speaker.claim_type = ClaimType.SELF
        db.commit()
    custom = tmp_path / "corrections.json"
    custom.write_text('{"version": "s", "corrections": {"while up": "walao", "la": "lah"}}')
    monkeypatch.setenv("CORRECTIONS_FILE", str(custom))
    result = runner.invoke(app, ["recount", str(session_id)])
    assert result.exit_code == 0, result.output
    assert "2 target words" in result.output  # walao + lah
    custom.write_text(
        '{"version": "t", "corrections": {"while up": "walao", "la": "lah", "voila": "walao"}}'
    )
    result = runner.invoke(app, ["recount", "--all"])
    assert result.exit_code == 0, result.output
    with DbSession(engine) as db:
        speaker_ids = list(db.scalars(select(SessionSpeaker.id)))
        counts = crud.speaker_word_counts(db, speaker_ids)
        assert sorted(counts.values(), key=len) == [{"lah": 1, "walao": 2}]
        session = db.get(Session, session_id)
        assert session is not None
        assert crud.leaderboard(db, session.group_id) == {user_id: {"lah": 1, "walao": 2}}
        session = db.get(Session, session_id)
        assert session is not None and (session.corrections_version or "").startswith("t+")
    # a new operating point, without ASR: nothing is that sure, so nothing counts (all kept)
    result = runner.invoke(app, ["recount", "--all", "--min-confidence", "1"])
    assert result.exit_code == 0, result.output
    assert "0 target words counted" in result.output
    with DbSession(engine) as db:
        assert crud.speaker_word_counts(db, speaker_ids) == {}
        assert db.scalar(select(func.count()).select_from(WordOccurrence)) == 3
    engine.dispose()


def test_status_and_reconcile(env, redis_conn):
    session_id, _ = _session(env, SessionStatus.PROCESSING)
    result = runner.invoke(app, ["reconcile"])
    assert result.exit_code == 0, result.output
    assert f"requeued {session_id}" in " ".join(result.output.split())
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "1 waiting" in result.output
    assert "processing" in result.output


def test_migrate_builds_an_empty_database(monkeypatch, tmp_path):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "fresh"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fresh" / "lahstats.db").exists()


def test_retention_command_and_status_say_what_is_due(env, monkeypatch):
    session_id, _ = _session(env, SessionStatus.COMPLETED, {"SPEAKER_00": ["hello"]})
    engine = create_engine(env.sqlalchemy_url)
    with DbSession(engine) as db:
        session = db.get(Session, session_id)
        assert session is not None
        session.processed_at = datetime.now(UTC) - timedelta(days=10)
        db.commit()
    engine.dispose()
    monkeypatch.setenv("AUDIO_RETENTION_DAYS", "7")
    status = runner.invoke(app, ["status"])
    assert "retention due: raw audio of 1 sessions" in status.output, status.output
    dry = runner.invoke(app, ["retention", "--dry-run"])
    assert f"audio {session_id}" in dry.output and "raw audio due: 1" in dry.output
    done = runner.invoke(app, ["retention"])
    assert done.exit_code == 0 and "raw audio deleted: 1 sessions" in done.output
    again = runner.invoke(app, ["retention", "--dry-run"])
    assert "raw audio due: 0 sessions" in again.output
    refused = runner.invoke(app, ["reprocess", str(session_id)])
    assert refused.exit_code == 1 and "deleted" in refused.output
