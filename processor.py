"""``process_session(session_id)``: one session's chunks → speakers, transcript, corrected
per-speaker target-word counts, an emotion per segment and a sample clip per speaker.

Reads top to bottom in :func:`run`. The job owns its transactions: a short one to take the
session, one per progress report, and one that replaces the session's results at the end.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import redis
import structlog
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from config import Settings
from models import SessionStatus
from observability import (
    JOBS_FAILED,
    JOBS_FINISHED,
    JOBS_STARTED,
    REAL_TIME_FACTOR,
    STAGE_SECONDS,
)
from processing import rows
from processing.chunks import ProcessingError, concatenate_chunks
from processing.clips import delete_clips, store_clips, store_evidence_clips
from processing.lease import held_lease
from processing.progress import ProgressReporter, Stage, StageProgress
from processing.retrying import is_transient
from services.analysis import analyse
from services.assignment import assign_speakers
from services.audio import AudioSpool
from services.corrections import Corrections, load_corrections
from services.device import resolve_device
from services.diarization import Diarizer, diarize, load_diarizer
from services.domain import Audio, SpeakerHints
from services.emotion import EmotionClassifier, load_emotion_classifier
from services.singlish import hotword_prompt
from services.transcription import Transcriber, load_transcriber, transcribe
from services.verification import Verdict, Verifier, load_verifier, verify
from storage import Storage
from webhooks import enqueue_event

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Models:
    """The loaded ML stages, built once per worker process."""

    diarizer: Diarizer
    transcriber: Transcriber
    emotion_classifier: EmotionClassifier
    corrections: Corrections
    verifier: Verifier | None = None  # the second listen (SINGLISH_VERIFY), on the ASR model


@dataclass(frozen=True)
class Pipeline:
    """Everything a job needs: settings, the database, storage and the loaded models."""

    settings: Settings
    session_factory: sessionmaker[DbSession]
    storage: Storage
    models: Models
    # Redis, for webhook events; None where there is no queue (``lahstats process``)
    connection: redis.Redis | None = None


def load_models(settings: Settings) -> Models:
    """Load every model once, logging how long each took and on which device."""
    transcriber = _timed("transcriber", load_transcriber, settings)
    return Models(
        diarizer=_timed("diarizer", load_diarizer, settings),
        transcriber=transcriber,
        emotion_classifier=_timed("emotion_classifier", load_emotion_classifier, settings),
        corrections=load_corrections(settings.corrections_file),
        verifier=load_verifier(settings, transcriber),
    )


def _timed(name: str, loader: Callable[[Settings], T], settings: Settings) -> T:
    started = time.perf_counter()
    model = loader(settings)
    log.info(
        "processor.model_loaded",
        model=name,
        load_s=round(time.perf_counter() - started, 2),
        device=resolve_device(settings.device),
    )
    return model


_installed: Pipeline | None = None


def install(pipeline: Pipeline) -> None:
    """Make ``pipeline`` the one :func:`process_session` uses (the worker calls this once)."""
    global _installed
    _installed = pipeline


def process_session(session_id: str) -> None:
    """The RQ job, enqueued by dotted path with the session id only."""
    if _installed is None:
        raise RuntimeError("no pipeline installed: start workers with `lahstats worker`")
    run(uuid.UUID(session_id), _installed)


def run(session_id: uuid.UUID, pipeline: Pipeline) -> None:
    """Process one session. A permanent error fails the session with a message naming the
    stage; a transient one (database or storage briefly down) leaves it ``processing`` for a
    retry. Either way the exception is re-raised so the queue keeps the traceback."""
    settings = pipeline.settings
    lease = timedelta(seconds=settings.lease_s)
    with structlog.contextvars.bound_contextvars(session_id=str(session_id), stage="queued"):
        job = rows.take(pipeline.session_factory, session_id, lease, settings.max_attempts)
        if job is None:
            log.info("processor.nothing_to_do")
            return
        JOBS_STARTED.inc()
        progress = ProgressReporter(
            pipeline.session_factory, session_id, job.attempt, settings.progress_min_interval_s
        )
        with held_lease(pipeline.session_factory, session_id, job.attempt, lease):
            try:
                duration, saved = _process(job, pipeline, progress)
            except Exception as exc:
                _record_failure(pipeline, job, progress, exc)
                raise
        _record_success(progress, duration)
        if saved is not None:  # else a newer attempt owns the session and will tell
            _notify(pipeline, job, saved.status, None)


def _record_failure(
    pipeline: Pipeline, job: rows.Job, progress: ProgressReporter, exc: Exception
) -> None:
    if is_transient(exc):
        JOBS_FAILED.labels(kind="transient").inc()
        log.warning("processor.transient_failure", stage=progress.stage.value, error=str(exc))
        rows.release(pipeline.session_factory, job)
    else:
        JOBS_FAILED.labels(kind="permanent").inc()
        log.error("processor.failed", stage=progress.stage.value, error=str(exc))
        message = rows.fail(pipeline.session_factory, job, progress.stage, exc)
        _notify(pipeline, job, SessionStatus.FAILED, message)


def _notify(
    pipeline: Pipeline, job: rows.Job, status: SessionStatus, error_message: str | None
) -> None:
    """Queue the session's webhook event, if it asked for one (delivery never blocks us)."""
    if job.webhook_url and pipeline.connection is not None:
        enqueue_event(
            pipeline.connection,
            pipeline.settings,
            job.webhook_url,
            job.session_id,
            status.value,
            error_message,
        )


def _record_success(progress: ProgressReporter, audio_seconds: float) -> None:
    total = sum(progress.durations.values())
    for stage, seconds in progress.durations.items():
        STAGE_SECONDS.labels(stage=stage.value).observe(seconds)
    if audio_seconds > 0:
        REAL_TIME_FACTOR.observe(total / audio_seconds)
    JOBS_FINISHED.inc()
    log.info(
        "processor.session_processed",
        seconds=round(total, 2),
        audio_seconds=round(audio_seconds, 2),
        real_time_factor=round(total / audio_seconds, 3) if audio_seconds else None,
    )


def _process(
    job: rows.Job, pipeline: Pipeline, progress: ProgressReporter
) -> tuple[float, rows.Saved | None]:
    """The stages, in order, each followed by its progress. Returns the audio's length (s)
    and what was saved (None: this attempt no longer owned the session)."""
    with AudioSpool(pipeline.settings.data_dir / "work") as spool:
        progress.enter(Stage.CONCATENATING)
        warnings = concatenate_chunks(
            job.chunks,
            pipeline.storage,
            spool,
            skip_bad_chunks=pipeline.settings.skip_bad_chunks,
            on_progress=progress.report,
        )
        audio = spool.audio()
        if audio.duration == 0:
            raise ProcessingError("no chunk of this session could be decoded")
        started = time.perf_counter()
        heard = process_audio(
            audio,
            job.hints,
            job.session_id,
            pipeline.models,
            pipeline.storage,
            pipeline.settings,
            progress,
        )
        saved = rows.save(
            pipeline.session_factory,
            job,
            rows.Outcome(
                heard=heard,
                duration_s=audio.duration,
                warnings=warnings,
                processing_time_s=time.perf_counter() - started,
                corrections_version=pipeline.models.corrections.version,
            ),
        )
    delete_clips(pipeline.storage, saved.stale_clips if saved else ())
    progress.finish()
    return audio.duration, saved


def process_audio(
    audio: Audio,
    hints: SpeakerHints,
    session_id: uuid.UUID,
    models: Models,
    storage: Storage,
    settings: Settings,
    progress: StageProgress,
) -> rows.Heard:
    """Everything the stages make of one session's audio, clips stored, nothing saved yet.
    (The benchmarks time the product through this function.)"""

    progress.enter(Stage.DIARIZING)
    turns = diarize(audio, models.diarizer, hints, progress.report)

    progress.enter(Stage.TRANSCRIBING)
    segments = transcribe(audio, models.transcriber, progress.report)
    utterances = assign_speakers(segments, turns)
    verdicts: tuple[Verdict, ...] = ()
    if models.verifier is not None:  # a second listen at English that may be Singlish
        verdicts = verify(
            audio, utterances, models.corrections, models.verifier, prompt=hotword_prompt()
        )

    progress.enter(Stage.SAVING)
    analysis = analyse(
        utterances,
        turns,
        models.corrections,
        models.emotion_classifier,
        progress.report,
        verdicts,
    )

    progress.enter(Stage.CLIPS)
    clips = store_clips(audio, turns, session_id, storage, settings.sample_clip_seconds)
    spans = [(o.start, o.end) for o in analysis.occurrences]
    evidence = store_evidence_clips(audio, spans, session_id, storage)
    return rows.Heard(analysis=analysis, clip_keys=clips, evidence_clips=evidence)
