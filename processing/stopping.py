"""Asking a running job to stop: ``DELETE /sessions/{id}`` sends RQ's stop-job command for a
session being processed. RQ's forking worker would kill its work horse; ours runs the job in
its own process (worker.py says why), so the command is recorded here, from RQ's command
thread, and the job stops itself at its next progress report."""

from __future__ import annotations

import threading
import uuid


class JobStopped(Exception):
    """The job was asked to stop (its session was deleted, or an operator stopped it)."""


class StopRequests:
    """The sessions whose jobs were asked to stop; safe to use from several threads."""

    def __init__(self) -> None:
        self._requested: set[uuid.UUID] = set()
        self._lock = threading.Lock()

    def request(self, session_id: uuid.UUID) -> None:
        with self._lock:
            self._requested.add(session_id)

    def check(self, session_id: uuid.UUID) -> None:
        """Raise :class:`JobStopped` when the session's job was asked to stop."""
        with self._lock:
            stopped = session_id in self._requested
        if stopped:
            raise JobStopped(f"session {session_id}: the job was asked to stop")

    def forget(self, session_id: uuid.UUID) -> None:
        """Drop the request once the job is over (it ran to the end or it stopped)."""
        with self._lock:
            self._requested.discard(session_id)
