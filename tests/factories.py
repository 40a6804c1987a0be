"""Rows as the API and the worker leave them, for tests that start mid-story; and the phone's
first calls (a group, a session, a chunk) for tests that go through the API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session as DbSession

from models import Group, GroupMember, Profile, Session, SessionStatus


def group_session(db: DbSession, status: SessionStatus, **fields: Any) -> Session:
    """A new user, their group, and an ended session of that group in ``status`` (flushed)."""
    user = Profile(id=uuid.uuid4())
    db.add(user)
    db.flush()  # no ORM relationship orders these inserts, so flush in dependency order
    group = Group(name="g", created_by=user.id)
    db.add(group)
    db.flush()
    db.add(GroupMember(group_id=group.id, user_id=user.id))
    fields.setdefault("ended_at", datetime.now(UTC))
    session = Session(group_id=group.id, started_by=user.id, status=status, **fields)
    db.add(session)
    db.flush()
    return session


def api_session(http: Any, headers: dict[str, str]) -> tuple[str, str]:
    """A new group of the caller's and a recording session in it, through the API (a
    TestClient or an httpx.Client): (group id, session id)."""
    group = http.post("/groups", json={"name": "g"}, headers=headers)
    assert group.status_code == 201, group.text
    started = http.post("/sessions/start", json={"group_id": group.json()["id"]}, headers=headers)
    assert started.status_code == 201, started.text
    return group.json()["id"], started.json()["session_id"]


def api_upload(
    http: Any,
    headers: dict[str, str],
    session_id: str,
    number: int | str,
    path: Path,
    content_type: str = "audio/wav",
) -> Any:
    """POST one chunk as the phone does (multipart ``file`` + ``chunk_number``)."""
    return http.post(
        f"/sessions/{session_id}/upload",
        files={"file": (path.name, path.read_bytes(), content_type)},
        data={"chunk_number": str(number)},
        headers=headers,
    )
