"""Stage names and the session's 0-100 progress, written forward-only in short transactions."""

from __future__ import annotations

import time
import uuid
from typing import Protocol

import structlog
from sqlalchemy import case, or_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lifecycle import Stage, announce, status_snapshot
from models import Session, SessionStatus
from processing.stopping import StopRequests

log = structlog.get_logger(__name__)


# Each stage owns a band of the 0-100 range, in the order the stages run. The contract's rough
# ranges hold: 0-10 concatenating, 10-40 diarizing, 40-85 hearing the words (transcribing, the
# second listen, the analysis of what was said), 85-100 clips and saving the results.
BANDS: dict[Stage, tuple[int, int]] = {
    Stage.CONCATENATING: (0, 10),
    Stage.DIARIZING: (10, 40),
    Stage.TRANSCRIBING: (40, 72),
    Stage.VERIFYING: (72, 78),
    Stage.ANALYSING: (78, 83),
    Stage.VOICES: (83, 85),
    Stage.CLIPS: (85, 95),
    Stage.SAVING: (95, 100),
}
# A live session's finish: most chunks were heard while it was recorded; hearing the rest
# (the last chunk at least) comes first, then the stages that need the whole session.
LIVE_BANDS: dict[Stage, tuple[int, int]] = {
    Stage.HEARING: (0, 50),
    Stage.DIARIZING: (50, 65),
    Stage.ANALYSING: (65, 80),
    Stage.VOICES: (80, 85),
    Stage.CLIPS: (85, 95),
    Stage.SAVING: (95, 100),
}


class StageProgress(Protocol):
    """Where the stages say which stage they are in and how far along it they are."""

    def enter(self, stage: Stage) -> None: ...

    def report(self, fraction: float) -> None: ...


class Unwatched:
    """Progress nobody watches (a benchmark, a test, ``process_audio`` outside a job)."""

    def enter(self, stage: Stage) -> None:
        pass

    def report(self, fraction: float) -> None:
        pass


class ProgressReporter:
    """Maps a stage's own fraction (0.0-1.0) onto its band and writes it, at most once per
    ``min_interval_s`` (stage changes always), never lowering the stored value. Writes are
    fenced by the attempt number, so a stale worker cannot move a newer attempt's progress.
    Progress is advisory: a failed write (database briefly down) is logged and skipped.
    Every report is also where the job stops when it was asked to (``stops``): it raises
    :class:`~processing.stopping.JobStopped`."""

    def __init__(
        self,
        session_factory: sessionmaker[DbSession],
        session_id: uuid.UUID,
        attempt: int,
        min_interval_s: float,
        stops: StopRequests | None = None,
        bands: dict[Stage, tuple[int, int]] = BANDS,
    ) -> None:
        self._factory, self._session_id, self._attempt = session_factory, session_id, attempt
        self._bands = bands
        self._min_interval_s = min_interval_s
        self._stops = stops
        self._last_write = 0.0
        self.stage = Stage.QUEUED
        self._stage_started = time.perf_counter()
        self._stage_cpu = time.process_time()
        self.durations: dict[Stage, float] = {}  # wall seconds of each finished stage
        self.cpu: dict[Stage, float] = {}  # the process's CPU seconds in each (every thread)

    def enter(self, stage: Stage) -> None:
        """Close the current stage (its duration is logged and kept) and start ``stage``."""
        self._check_stop()
        self._close_stage()
        self.stage = stage
        structlog.contextvars.bind_contextvars(stage=stage.value)
        self._write(self._bands[stage][0])

    def finish(self) -> None:
        self._close_stage()

    def _close_stage(self) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        if self.stage is not Stage.QUEUED:
            self.durations[self.stage] = now - self._stage_started
            self.cpu[self.stage] = cpu - self._stage_cpu
            log.info(
                "processor.stage_finished",
                stage=self.stage.value,
                duration_s=round(self.durations[self.stage], 3),
                cpu_s=round(self.cpu[self.stage], 3),
            )
        self._stage_started, self._stage_cpu = now, cpu

    def report(self, fraction: float) -> None:
        self._check_stop()
        if time.monotonic() - self._last_write < self._min_interval_s:
            return
        low, high = self._bands[self.stage]
        self._write(int(low + min(max(fraction, 0.0), 1.0) * (high - low)))

    def _check_stop(self) -> None:
        if self._stops is not None:
            self._stops.check(self._session_id)

    def _write(self, percent: int) -> None:
        self._last_write = time.monotonic()
        try:
            self._update(percent)
        except SQLAlchemyError as exc:
            log.warning("processor.progress_write_failed", error=str(exc))

    def _update(self, percent: int) -> None:
        """One UPDATE that changes nothing unless the progress rises or the stage changes; a
        change bumps the status version and is announced to the status cache."""
        stage = self.stage.value
        with self._factory() as db:
            changed = db.execute(
                update(Session)
                .where(
                    Session.id == self._session_id,
                    Session.status == SessionStatus.PROCESSING,
                    Session.attempts == self._attempt,
                    or_(Session.progress < percent, Session.stage.is_distinct_from(stage)),
                )
                .values(
                    progress=case((Session.progress < percent, percent), else_=Session.progress),
                    stage=stage,
                    status_version=Session.status_version + 1,
                )
                .returning(Session)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()
            if changed is not None:
                announce(db, status_snapshot(changed))
            db.commit()
