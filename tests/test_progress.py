"""``processing.progress.ProgressReporter`` against real Postgres: each stage writes its band
of 0-100, the stored number only moves forward, reports are rate limited (stage changes are
not), a stale attempt writes nothing, a failed write is skipped, and a job asked to stop
stops at its next report."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from models import Session, SessionStatus
from processing.progress import BANDS, ProgressReporter, Stage
from processing.stopping import JobStopped, StopRequests
from tests.factories import stored_session


def _progress(session_factory, session_id: uuid.UUID) -> tuple[int, str | None]:
    with session_factory() as db:
        session = db.get(Session, session_id)
        assert session is not None
        return session.progress, session.stage


def _reporter(session_factory, session_id, attempt: int = 1, min_interval_s: float = 0):
    return ProgressReporter(session_factory, session_id, attempt, min_interval_s)


def test_each_stage_writes_its_band_and_the_bands_cover_0_to_100(session_factory):
    session_id = stored_session(session_factory, SessionStatus.PROCESSING, attempts=1)
    bands = list(BANDS.values())
    assert bands[0][0] == 0 and bands[-1][1] == 100
    assert all(high == next_low for (_, high), (next_low, _) in itertools.pairwise(bands))
    reporter = _reporter(session_factory, session_id)
    for stage, (low, high) in BANDS.items():
        reporter.enter(stage)
        assert _progress(session_factory, session_id) == (low, stage.value)
        reporter.report(0.5)
        assert _progress(session_factory, session_id) == (int(low + (high - low) / 2), stage.value)
        reporter.report(1.0)
        assert _progress(session_factory, session_id) == (high, stage.value)
    reporter.finish()
    assert set(reporter.durations) == set(BANDS)  # each stage's wall time, for the logs


def test_progress_only_moves_forward(session_factory):
    session_id = stored_session(session_factory, SessionStatus.PROCESSING, attempts=1)
    reporter = _reporter(session_factory, session_id)
    low, high = BANDS[Stage.TRANSCRIBING]
    middle = int(low + 0.5 * (high - low))
    reporter.enter(Stage.TRANSCRIBING)
    reporter.report(0.5)
    assert _progress(session_factory, session_id) == (middle, "transcribing")
    reporter.report(0.2)  # behind what is stored
    reporter.report(-3.0)  # clamped to the band's start
    assert _progress(session_factory, session_id) == (middle, "transcribing")
    reporter.report(7.0)  # clamped to the band's end
    assert _progress(session_factory, session_id) == (high, "transcribing")
    reporter.enter(Stage.DIARIZING)  # an earlier band: the stage is named, the number stays
    assert _progress(session_factory, session_id) == (high, "diarizing")


def test_reports_are_rate_limited_and_stage_changes_are_not(session_factory):
    session_id = stored_session(session_factory, SessionStatus.PROCESSING, attempts=1)
    reporter = _reporter(session_factory, session_id, min_interval_s=2.0)
    reporter.enter(Stage.DIARIZING)
    reporter.report(0.5)  # within 2 s of the last write: skipped
    assert _progress(session_factory, session_id) == (10, "diarizing")
    reporter.enter(Stage.TRANSCRIBING)  # a stage change is written at once
    reporter.report(1.0)
    assert _progress(session_factory, session_id) == (40, "transcribing")
    time.sleep(2.1)
    reporter.report(1.0)
    assert _progress(session_factory, session_id) == (BANDS[Stage.TRANSCRIBING][1], "transcribing")


def test_a_stale_attempt_writes_nothing(session_factory):
    """The first worker lost the session (its lease ran out, attempt 2 took it): whatever it
    still reports is dropped, and attempt 2's progress stands."""
    session_id = stored_session(session_factory, SessionStatus.PROCESSING, attempts=2)
    stale = _reporter(session_factory, session_id, attempt=1)
    stale.enter(Stage.DIARIZING)
    stale.report(1.0)
    assert _progress(session_factory, session_id) == (0, None)
    current = _reporter(session_factory, session_id, attempt=2)
    current.enter(Stage.CONCATENATING)
    current.report(0.5)
    stale.enter(Stage.CLIPS)
    stale.report(1.0)
    assert _progress(session_factory, session_id) == (5, "concatenating")


def test_a_session_no_longer_processing_is_not_written(session_factory):
    session_id = stored_session(session_factory, SessionStatus.FAILED, attempts=1)
    reporter = _reporter(session_factory, session_id)
    reporter.enter(Stage.TRANSCRIBING)
    reporter.report(1.0)
    assert _progress(session_factory, session_id) == (0, None)


def test_a_failed_write_is_skipped(session_factory):
    """Progress is advisory: with the database unreachable the stage still goes on."""
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    reporter = _reporter(sessionmaker(engine), uuid.uuid4())
    reporter.enter(Stage.DIARIZING)
    reporter.report(0.5)
    assert reporter.stage is Stage.DIARIZING
    engine.dispose()


def test_a_job_asked_to_stop_stops_at_its_next_report_even_a_rate_limited_one(session_factory):
    session_id = stored_session(session_factory, SessionStatus.PROCESSING, attempts=1)
    other = stored_session(session_factory, SessionStatus.PROCESSING, attempts=1)
    stops = StopRequests()
    reporter = ProgressReporter(session_factory, session_id, 1, 3600, stops)
    reporter.enter(Stage.DIARIZING)
    stops.request(other)  # another job's request is not this one's
    reporter.report(0.5)
    stops.request(session_id)
    with pytest.raises(JobStopped):
        reporter.report(0.6)
    with pytest.raises(JobStopped):
        reporter.enter(Stage.TRANSCRIBING)
    assert _progress(session_factory, session_id) == (BANDS[Stage.DIARIZING][0], "diarizing")
    stops.forget(session_id)  # the job is over: a later job of this session runs on
    reporter.enter(Stage.TRANSCRIBING)


def test_each_stage_keeps_its_cpu_seconds_apart_from_its_wall_time(session_factory):
    session_id = stored_session(session_factory, SessionStatus.PROCESSING, attempts=1)
    reporter = _reporter(session_factory, session_id)
    reporter.enter(Stage.TRANSCRIBING)
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # busy: CPU as long as the wall clock
        pass
    reporter.enter(Stage.CLIPS)
    time.sleep(0.3)  # waiting: wall time, next to no CPU
    reporter.finish()
    assert reporter.cpu[Stage.TRANSCRIBING] >= 0.3
    assert reporter.durations[Stage.CLIPS] >= 0.3
    assert reporter.cpu[Stage.CLIPS] < 0.15
