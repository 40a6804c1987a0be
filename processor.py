"""``process_session(session_id)``: one session's chunks → speakers, transcript, corrected
per-speaker target-word counts, an emotion per segment and a sample clip per speaker.

Reads top to bottom in :func:`run`. The job owns its transactions: a short one to take the
session, one per progress report, and one that replaces the session's results at the end.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import numpy as np
import redis
import structlog
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

import lifecycle
from config import Settings
from observability import (
    JOBS_FAILED,
    JOBS_FINISHED,
    JOBS_STARTED,
    REAL_TIME_FACTOR,
    STAGE_CPU_SECONDS,
    STAGE_SECONDS,
)
from processing import hearings, rows
from processing.chunks import ChunkAudio, ChunkedRecording, concatenate_chunks
from processing.clips import delete_clips, store_clips
from processing.lease import held_lease
from processing.progress import BANDS, LIVE_BANDS, ProgressReporter, Stage, StageProgress
from processing.retrying import is_transient
from processing.stopping import StopRequests
from processing.suggestions import Matching
from services.analysis import analyse
from services.assignment import assign_speakers
from services.audio import AudioSpool
from services.device import limit_torch_threads, resolve_device
from services.diarization import (
    FAR_FIELD_WARNING,
    SPAN_LEAD_IN_S,
    Diarization,
    Diarizer,
    PlacedVoices,
    RoomStats,
    SpanDiarizer,
    diarize_spans,
    hear_speakers,
    load_diarizer,
    sounds_distant,
    span_diarizer,
)
from services.domain import (
    Audio,
    Emotion,
    ProgressCallback,
    Recording,
    SpeakerHints,
    SpeakerVoice,
    Utterance,
    no_progress,
)
from services.emotion import EmotionClassifier, load_emotion_classifier
from services.hearing import (
    ChunkHearing,
    Placed,
    chunk_stretches,
    hear_stretch,
    place,
    session_room,
    session_segments,
    session_verdicts,
    voices_as,
)
from services.known_voices import KnownVoices, separate_known_voices
from services.singlish import Singlish, listen_again, load_singlish
from services.singlish.verification import Verdict
from services.speech_emotion import SpeechEmotionClassifier, load_speech_emotion_classifier
from services.transcription import Transcriber, load_transcriber, transcribe
from services.voiceprints import VoiceEmbedder, embed_speakers, load_voice_embedder
from storage import Storage, delete_session_objects

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Engines:
    """The loaded ML stages, built once per worker process (not ``models.py``'s tables)."""

    diarizer: Diarizer
    transcriber: Transcriber
    emotion_classifier: EmotionClassifier
    singlish: Singlish  # the dictionary, and the verifier on the ASR model (SINGLISH_VERIFY)
    # how things are said (SPEECH_EMOTION_MODEL); None: the text emotion alone
    speech_emotion_classifier: SpeechEmotionClassifier | None = None
    # CAM++ for each speaker's voice (claim suggestions); None when VOICEPRINTS_ENABLED=0
    voice_embedder: VoiceEmbedder | None = None


@dataclass(frozen=True)
class Pipeline:
    """Everything a job needs: settings, the database, storage and the loaded engines."""

    settings: Settings
    session_factory: sessionmaker[DbSession]
    storage: Storage
    engines: Engines
    # Redis, for webhook events; None where there is no queue (``lahstats process``)
    connection: redis.Redis | None = None
    # Jobs asked to stop (RQ's stop-job command, which DELETE /sessions/{id} sends)
    stops: StopRequests = field(default_factory=StopRequests)

    def notify(self, notice: lifecycle.Notice | None) -> None:
        """After a commit: the session's webhook event, if it asked for one."""
        lifecycle.notify(self.connection, self.settings, notice)

    def ears(self) -> hearings.Ears:
        """What chunks are heard with (live sessions)."""
        engines = self.engines
        return hearings.Ears(
            engines.transcriber,
            engines.singlish,
            engines.diarizer,
            hearings.hearer_of(self.settings, engines.singlish),
        )


def load_engines(
    settings: Settings,
    on_loaded: Callable[[str, float], None] | None = None,
    *,
    diarizer_loader: Callable[[Settings], Diarizer] = load_diarizer,
    transcriber_loader: Callable[[Settings], Transcriber] = load_transcriber,
    emotion_loader: Callable[[Settings], EmotionClassifier] = load_emotion_classifier,
) -> Engines:
    """Load every model once, logging how long each took and on which device;
    ``on_loaded(model, seconds)`` is told the same. The loaders default to the product's
    (the GPU benchmark swaps in its own)."""
    limit_torch_threads(settings.torch_cpu_threads)
    transcriber = _timed("transcriber", transcriber_loader, settings, on_loaded)
    return Engines(
        diarizer=_timed("diarizer", diarizer_loader, settings, on_loaded),
        transcriber=transcriber,
        emotion_classifier=_timed("emotion_classifier", emotion_loader, settings, on_loaded),
        singlish=load_singlish(settings, transcriber),
        speech_emotion_classifier=_timed(
            "speech_emotion_classifier", load_speech_emotion_classifier, settings, on_loaded
        ),
        voice_embedder=_timed("voice_embedder", load_voice_embedder, settings, on_loaded)
        if settings.voiceprints_enabled
        else None,
    )


def _timed(
    name: str,
    loader: Callable[[Settings], T],
    settings: Settings,
    on_loaded: Callable[[str, float], None] | None = None,
) -> T:
    started = time.perf_counter()
    model = loader(settings)
    seconds = time.perf_counter() - started
    log.info(
        "processor.model_loaded",
        model=name,
        load_s=round(seconds, 2),
        device=resolve_device(settings.device),
    )
    if on_loaded is not None:
        on_loaded(name, seconds)
    return model


_installed: Pipeline | None = None
_chunk_audio: ChunkAudio | None = None  # the chunks the worker's last chunk jobs decoded


def install(pipeline: Pipeline) -> None:
    """Make ``pipeline`` the one :func:`process_session` uses (the worker calls this once).
    With Redis, every commit of its session factory publishes the statuses it changed."""
    global _installed, _chunk_audio
    _chunk_audio = ChunkAudio(pipeline.storage)
    if pipeline.connection is not None:
        lifecycle.publish_status(
            pipeline.session_factory, pipeline.connection, pipeline.settings.status_cache_ttl_s
        )
    _installed = pipeline


def process_session(session_id: str) -> None:
    """The RQ job, enqueued by dotted path with the session id only."""
    if _installed is None:
        raise RuntimeError("no pipeline installed: start workers with `lahstats worker`")
    run(uuid.UUID(session_id), _installed)


def hear_chunk(session_id: str, chunk_number: int) -> None:
    """The RQ chunk job of a live session, enqueued by dotted path with ids only after the
    upload's commit: hear that chunk's stretch and store it (nothing, when it is stored)."""
    if _installed is None:
        raise RuntimeError("no pipeline installed: start workers with `lahstats worker`")
    with structlog.contextvars.bound_contextvars(session_id=session_id, chunk=chunk_number):
        started = time.perf_counter()
        outcome = hearings.hear_chunk(
            _installed.session_factory,
            _installed.storage,
            _installed.ears(),
            uuid.UUID(session_id),
            chunk_number,
            audio=_chunk_audio,
        )
        log.info(
            "processor.chunk_heard",
            outcome=outcome.value,
            seconds=round(time.perf_counter() - started, 3),
        )


def run(session_id: uuid.UUID, pipeline: Pipeline) -> None:
    """Process one session. A permanent error fails the session with a message naming the
    stage; a transient one (database or storage briefly down) leaves it ``processing`` for a
    retry. Either way the exception is re-raised so the queue keeps the traceback."""
    settings = pipeline.settings
    lease = timedelta(seconds=settings.lease_s)
    with structlog.contextvars.bound_contextvars(session_id=str(session_id), stage="queued"):
        attempt = rows.take(pipeline.session_factory, session_id, lease, settings.max_attempts)
        if not isinstance(attempt, rows.Attempt):
            pipeline.notify(attempt)  # it used up its attempts and was failed (or: nothing)
            return
        JOBS_STARTED.inc()
        # live: the finish reads what chunk jobs heard, and hears the rest chunk by chunk
        # itself (so memory stays flat even for a session no chunk job heard); else the batch
        # path decodes and hears the whole recording at once
        live = settings.live_processing
        progress = ProgressReporter(
            pipeline.session_factory,
            session_id,
            attempt.number,
            settings.progress_min_interval_s,
            pipeline.stops,
            LIVE_BANDS if live else BANDS,
        )
        with held_lease(pipeline.session_factory, session_id, attempt.number, lease):
            try:
                process = _finish if live else _process
                duration, notice = process(attempt, pipeline, progress)
            except Exception as exc:
                _record_failure(pipeline, attempt, progress, exc)
                raise
            finally:
                pipeline.stops.forget(session_id)
        _record_success(progress, duration)
        pipeline.notify(notice)


def _record_failure(
    pipeline: Pipeline, attempt: rows.Attempt, progress: ProgressReporter, exc: Exception
) -> None:
    """A transient failure leaves the session for a retry; a job whose session was deleted
    (stopped for it, as a rule: :class:`~processing.stopping.JobStopped`, however a stage
    wrapped it) only cleans up after itself; any other failure fails the session (a job an
    operator stopped too, saying so)."""
    if is_transient(exc):
        JOBS_FAILED.labels(kind="transient").inc()
        log.warning("processor.transient_failure", stage=progress.stage.value, error=str(exc))
        rows.release(pipeline.session_factory, attempt)
    elif _deleted_meanwhile(pipeline, attempt):
        JOBS_FAILED.labels(kind="deleted").inc()
        log.info("processor.stopped", stage=progress.stage.value, error=str(exc))
    else:
        JOBS_FAILED.labels(kind="permanent").inc()
        pipeline.notify(rows.fail(pipeline.session_factory, attempt, progress.stage, exc))


def _record_success(progress: ProgressReporter, audio_seconds: float) -> None:
    total = sum(progress.durations.values())
    for stage, seconds in progress.durations.items():
        STAGE_SECONDS.labels(stage=stage.value).observe(seconds)
    for stage, cpu_s in progress.cpu.items():
        STAGE_CPU_SECONDS.labels(stage=stage.value).inc(cpu_s)
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
    attempt: rows.Attempt, pipeline: Pipeline, progress: ProgressReporter
) -> tuple[float, lifecycle.Notice | None]:
    """The stages, in order, each followed by its progress; then the clips and the results
    are stored. Returns the audio's length (s) and what to tell the outside once saved."""
    settings, storage = pipeline.settings, pipeline.storage
    with AudioSpool(settings.data_dir / "work") as spool:
        progress.enter(Stage.CONCATENATING)
        warnings = concatenate_chunks(
            attempt.chunks,
            storage,
            spool,
            skip_bad_chunks=settings.skip_bad_chunks,
            on_progress=progress.report,
        )
        audio = spool.audio()
        started = time.perf_counter()
        known = _known_voices(pipeline, attempt)
        heard = process_audio(audio, attempt.hints, pipeline.engines, progress, known)
        notice = _store_results(attempt, pipeline, progress, audio, heard, warnings, started)
    return audio.duration, notice


def _finish(
    attempt: rows.Attempt, pipeline: Pipeline, progress: ProgressReporter
) -> tuple[float, lifecycle.Notice | None]:
    """A live session's end: hear the chunks no chunk job heard (the last one at least), then
    the stages that need the whole session, from the stored hearings; the audio is read back
    from the chunks only where a clip or a voice needs it."""
    started = time.perf_counter()
    progress.enter(Stage.HEARING)
    heard_chunks = hearings.hear_remaining(
        pipeline.session_factory,
        pipeline.storage,
        pipeline.ears(),
        attempt.session_id,
        [c.number for c in attempt.chunks],
        skip_bad_chunks=pipeline.settings.skip_bad_chunks,
        on_progress=progress.report,
    )
    # a dozen decoded chunks kept (~25 MB): each speaker's voice reads pieces all over
    recording = ChunkedRecording(heard_chunks.lengths, ChunkAudio(pipeline.storage, keep=12))
    # a session processed again keeps its texts' emotions (text only: with a speech
    # emotion model, how each was said is heard again)
    known = (
        rows.text_emotions(pipeline.session_factory, attempt.session_id)
        if pipeline.engines.speech_emotion_classifier is None
        else {}
    )
    heard = finish_hearings(
        heard_chunks.hearings,
        recording,
        attempt.hints,
        pipeline.engines,
        progress,
        known,
        _known_voices(pipeline, attempt),
        _earlier_voices(pipeline, attempt),
    )
    warnings = list(heard_chunks.warnings)
    notice = _store_results(attempt, pipeline, progress, recording, heard, warnings, started)
    return recording.duration, notice


def _store_results(
    attempt: rows.Attempt,
    pipeline: Pipeline,
    progress: ProgressReporter,
    recording: Recording,
    heard: rows.Heard,
    warnings: list[str],
    started: float,
) -> lifecycle.Notice | None:
    """Both paths' end: the clips, then the results in one transaction; what to tell the
    outside once saved (None: nothing was saved, by this attempt)."""
    settings, storage = pipeline.settings, pipeline.storage
    if _deleted_meanwhile(pipeline, attempt):
        return None

    progress.enter(Stage.CLIPS)
    stored = rows.evidence_clips(pipeline.session_factory, attempt.session_id)
    clips = store_clips(
        recording, heard, attempt.session_id, storage, settings, progress.report, stored
    )

    progress.enter(Stage.SAVING)
    saved = rows.save(
        pipeline.session_factory,
        attempt,
        rows.Outcome(
            heard=heard,
            clips=clips,
            duration_s=recording.duration,
            warnings=[*warnings, *heard.warnings],
            processing_time_s=time.perf_counter() - started,
            corrections_version=pipeline.engines.singlish.corrections.version,
            rating=pipeline.engines.singlish.rating,
            matching=_matching(pipeline),
        ),
    )
    if saved is None:  # another attempt owns the session now (it saves, it notifies), or
        _deleted_meanwhile(pipeline, attempt)  # the session was deleted: clean up after us
        return None
    delete_clips(storage, saved.stale_clips)
    progress.finish()
    return saved.notice


def _deleted_meanwhile(pipeline: Pipeline, attempt: rows.Attempt) -> bool:
    """Whether the session was deleted while this job worked on it; if so, delete whatever
    the job stored for it since (the deletion emptied its folders before the job wrote there)."""
    if not rows.gone(pipeline.session_factory, attempt.session_id):
        return False
    deleted = delete_session_objects(pipeline.storage, attempt.session_id)
    log.info("processor.session_deleted_meanwhile", objects_deleted=len(deleted))
    return True


def _known_voices(pipeline: Pipeline, attempt: rows.Attempt) -> KnownVoices | None:
    """The voiceprints of the session's group members in the voice embedder's space, which
    tell apart two members the diarizer heard as one (None: voiceprints off)."""
    embedder = pipeline.engines.voice_embedder
    if embedder is None:
        return None
    settings = pipeline.settings
    return KnownVoices(
        rows.group_voiceprints(pipeline.session_factory, attempt.session_id, embedder.name),
        settings.voiceprint_min_score,
        settings.voiceprint_min_margin,
    )


def _earlier_voices(pipeline: Pipeline, attempt: rows.Attempt) -> dict[str, SpeakerVoice]:
    """The voices the session's last results gave (a session processed again), by what each
    was heard from."""
    embedder = pipeline.engines.voice_embedder
    if embedder is None:
        return {}
    return rows.heard_voices(pipeline.session_factory, attempt.session_id, embedder.name)


def _matching(pipeline: Pipeline) -> Matching | None:
    embedder = pipeline.engines.voice_embedder
    return None if embedder is None else Matching.of(pipeline.settings, embedder.name)


def process_audio(
    audio: Audio,
    hints: SpeakerHints,
    engines: Engines,
    progress: StageProgress,
    known_voices: KnownVoices | None = None,
) -> rows.Heard:
    """Everything the stages make of one session's 16 kHz audio; nothing is stored (the
    caller stores clips and results). The benchmarks time the product through this.
    ``known_voices``: the group's voiceprints, which split a speaker who is two members."""
    progress.enter(Stage.DIARIZING)
    diarization = hear_speakers(audio, engines.diarizer, hints, progress.report)
    diarization = _told_apart(audio, diarization, hints, engines, known_voices)
    doubts = _doubts(engines.diarizer.hears_far_field, lambda: sounds_distant(audio))

    progress.enter(Stage.TRANSCRIBING)
    segments = transcribe(audio, engines.transcriber, progress.report)
    utterances = assign_speakers(segments, diarization.exclusive)

    progress.enter(Stage.VERIFYING)  # a second listen at English that may be Singlish
    verdicts = listen_again(audio, utterances, engines.singlish, progress.report)
    return _understood(audio, utterances, verdicts, diarization, engines, progress, doubts)


def finish_hearings(
    heard_chunks: Sequence[tuple[float, ChunkHearing]],
    recording: Recording,
    hints: SpeakerHints,
    engines: Engines,
    progress: StageProgress,
    known_emotions: Mapping[str, Emotion] | None = None,
    known_voices: KnownVoices | None = None,
    earlier_voices: Mapping[str, SpeakerVoice] | None = None,
) -> rows.Heard:
    """:func:`process_audio` of a live session, from its chunks' hearings ((session second
    each chunk starts, its hearing)): the stored window embeddings are clustered once
    (speaker-count hints honoured), words given to speakers, then the same analysis
    (``known_emotions``: texts whose emotion is already known; ``earlier_voices``: the
    speakers' voices the session's last results gave, by what each was heard from)."""
    placed = place(heard_chunks)
    room = session_room(placed)
    progress.enter(Stage.DIARIZING)
    chosen = span_diarizer(engines.diarizer, room)
    if chosen is None:  # a backend that hears whole recordings (pyannote): decode it all
        diarizer: Diarizer | SpanDiarizer = engines.diarizer
        whole = recording.slice(0.0, recording.duration)
        diarization = hear_speakers(whole, engines.diarizer, hints, progress.report)
    else:
        diarizer = chosen
        spans = [_voices_for(p, chosen, recording) for p in placed]
        diarization = diarize_spans(spans, recording.duration, chosen, hints, progress.report)
    diarization = _told_apart(recording, diarization, hints, engines, known_voices)
    doubts = _doubts(diarizer.hears_far_field, lambda: room.distant)
    utterances = assign_speakers(session_segments(placed), diarization.exclusive)
    verdicts = session_verdicts(placed, utterances)
    return _understood(
        recording,
        utterances,
        verdicts,
        diarization,
        engines,
        progress,
        doubts,
        known_emotions,
        earlier_voices,
    )


def _voices_for(placed: Placed, diarizer: SpanDiarizer, recording: Recording) -> PlacedVoices:
    """What ``diarizer`` keeps of the stretch (taken again from the chunks if the chunk job
    chose the other backend)."""
    hearing = placed.hearing
    start, end = placed.offset, placed.offset + hearing.end - hearing.start

    def audio() -> tuple[Audio | None, Audio]:  # decoded only when needed
        lead_in = recording.slice(start - SPAN_LEAD_IN_S, start) if start > 0 else None
        return lead_in, recording.slice(start, end)

    return start, voices_as(hearing.voices, diarizer, audio)


def process_chunks(
    chunks: Sequence[Audio],
    hints: SpeakerHints,
    engines: Engines,
    progress: StageProgress,
    known_voices: KnownVoices | None = None,
) -> rows.Heard:
    """The live path on a recording's chunks in memory: each chunk's stretch heard as its
    chunk job hears it (the room so far deciding the diarizer), then :func:`finish_hearings`.
    The benchmarks score and time the live path through this."""
    progress.enter(Stage.HEARING)
    heard = hear_chunks(chunks, engines, progress.report)
    recording = Audio(np.concatenate([c.samples for c in chunks]).astype(np.float32))
    return finish_hearings(heard, recording, hints, engines, progress, None, known_voices)


def hear_chunks(
    chunks: Sequence[Audio], engines: Engines, on_progress: ProgressCallback = no_progress
) -> list[tuple[float, ChunkHearing]]:
    """Each chunk's stretch heard as its chunk job hears it (the room so far deciding the
    diarizer), with where it starts in the first chunk's seconds."""
    heard, room = [], RoomStats()
    stretches = chunk_stretches(chunks)
    for i, (start, stretch) in enumerate(stretches):
        hearing = hear_stretch(
            stretch,
            transcriber=engines.transcriber,
            singlish=engines.singlish,
            diarizer=engines.diarizer,
            room_before=room,
        )
        room += hearing.room
        heard.append((start, hearing))
        on_progress((i + 1) / len(stretches))
    return heard


def _told_apart(
    recording: Recording,
    diarization: Diarization,
    hints: SpeakerHints,
    engines: Engines,
    known: KnownVoices | None,
) -> Diarization:
    """A speaker who is two of the group's members, split by their voiceprints; never when
    the session was given its speaker count or a most (the people there know it better)."""
    if engines.voice_embedder is None or known is None:
        return diarization
    if hints.num_speakers is not None or hints.max_speakers is not None:
        return diarization
    return separate_known_voices(recording, diarization, engines.voice_embedder, known)


def _doubts(hears_far_field: bool, distant: Callable[[], bool]) -> tuple[str, ...]:
    if hears_far_field or not distant():
        return ()
    log.warning("far-field audio on a diarizer not built for it")
    return (FAR_FIELD_WARNING,)


def _understood(
    recording: Recording,
    utterances: Sequence[Utterance],
    verdicts: Sequence[Verdict],
    diarization: Diarization,
    engines: Engines,
    progress: StageProgress,
    doubts: tuple[str, ...],
    known_emotions: Mapping[str, Emotion] | None = None,
    earlier_voices: Mapping[str, SpeakerVoice] | None = None,
) -> rows.Heard:
    """Both paths' last stages: corrections, counts and emotions, then each speaker's voice."""
    turns = diarization.turns
    progress.enter(Stage.ANALYSING)
    analysis = analyse(
        utterances,
        turns,
        engines.singlish.corrections,
        engines.emotion_classifier,
        progress.report,
        verdicts,
        engines.singlish.rating,
        speech=None
        if engines.speech_emotion_classifier is None
        else (recording, engines.speech_emotion_classifier),
        known=known_emotions,
    )
    voices = diarization.voices
    if engines.voice_embedder is not None:
        progress.enter(Stage.VOICES)
        embedder = engines.voice_embedder
        voices += embed_speakers(recording, turns, embedder, progress.report, earlier_voices)
    return rows.Heard(analysis=analysis, turns=turns, warnings=doubts, voices=voices)
