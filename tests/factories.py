"""Rows as the API and the worker leave them, for tests that start mid-story."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
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
    session = Session(
        group_id=group.id,
        started_by=user.id,
        status=status,
        ended_at=datetime.now(UTC),
        **fields,
    )
    db.add(session)
    db.flush()
    return session
