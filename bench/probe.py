"""The measured process: ``python -m bench.probe SPEC.json OUT.json``.

Run in a fresh subprocess for each set of sessions, so its model load time and its peak
resident memory are those of a worker that starts, loads, and processes exactly these
sessions. Two modes:

* ``pipeline``: the worker's own calls, as ``processor._process`` makes them: the models
  loaded by ``processor.load_models`` (each model's load time reported by it), the chunks
  decoded into the spool by ``processing.chunks.concatenate_chunks``, then
  ``processor.process_audio``; each stage timed as the stages announce themselves
  (``processing.progress.Stage``). The database writes are not part of it (the
  ``throughput`` benchmark covers the whole job).
* ``baseline``: the obvious alternative, faster-whisper alone with the same model and the
  same decoding options on the same chunks (decoded by faster-whisper's own PyAV reader);
  each session also reports the CPU seconds its decode and ASR used (``cpu_s``).

Peak memory: the process's ``VmHWM`` is reset before each session (``/proc/self/clear_refs``)
so every session gets its own peak; where the kernel refuses the reset, the peaks are
cumulative (the output says which).
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.report import Stopwatch, proc_status_mib
from config import Settings
from processing.progress import Stage
from services.domain import SAMPLE_RATE, Audio, SpeakerHints

if TYPE_CHECKING:
    from processing.rows import ChunkRef
    from storage import Storage

# the column each stage has always had in the benchmark's tables and JSON
STAGE_COLUMNS = {
    Stage.CONCATENATING: "concatenate",
    Stage.DIARIZING: "diarize",
    Stage.TRANSCRIBING: "transcribe",
    Stage.VERIFYING: "transcribe",  # the second listen: reported with the recogniser's time
    Stage.ANALYSING: "analyse",
    Stage.VOICES: "voices",
    Stage.CLIPS: "clips",
}
WARMUP_S = 8.0


def main(argv: list[str] | None = None) -> int:
    spec_path, out_path = (argv or sys.argv[1:])[:2]
    spec = json.loads(Path(spec_path).read_text())
    run = run_baseline if spec["mode"] == "baseline" else run_pipeline
    result = run(spec)
    peaks = [s["peak_rss_mib"] or 0.0 for s in result["sessions"]]
    result["process_peak_rss_mib"] = max([*peaks, result["load_peak_rss_mib"] or 0.0])
    result["peak_resets_work"] = _reset_peak()
    Path(out_path).write_text(json.dumps(result, indent=2))
    return 0


def probe_settings(spec: dict[str, Any], data_dir: Path) -> Settings:
    """The worker's settings, with the spec's overrides (model, device...)."""
    return Settings(environment="development", data_dir=data_dir, **spec.get("settings", {}))


# --- pipeline -----------------------------------------------------------------------------


def run_pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lahstats-bench-") as tmp:
        settings = probe_settings(spec, Path(tmp))
        with Stopwatch() as loading:  # every model, the corrections and the verifier
            models, load = _load_pipeline(settings, spec)
        after_load = proc_status_mib("self", "VmRSS") or 0.0
        load_peak = proc_status_mib("self", "VmHWM")
        with Stopwatch() as warmup:
            if spec.get("warmup", True):
                _pipeline_warmup(spec["sessions"][0], models)
        sessions = [_pipeline_session(s, models, settings, spec) for s in spec["sessions"]]
    return {
        "mode": "pipeline",
        "load_s": load,
        "load_total_s": round(loading.seconds, 3),
        "rss_after_load_mib": after_load,
        "load_peak_rss_mib": load_peak,
        "warmup_s": round(warmup.seconds, 3),
        "sessions": sessions,
        **_device_info(spec),
    }


def _load_pipeline(settings: Settings, spec: dict[str, Any]) -> tuple[Any, dict[str, float]]:
    """``processor.load_models``, each model's load time as it reports them; ``--gpu`` swaps
    in the production diarizer and ASR (``bench.gpu``)."""
    from processor import load_engines

    loaders: dict[str, Any] = {}
    if spec.get("gpu"):
        import bench.gpu as gpu

        loaders = {
            "diarizer_loader": gpu.diarizer_loader(spec["gpu"]),
            "transcriber_loader": gpu.transcriber_loader(spec["gpu"]),
            "emotion_loader": gpu.emotion_loader(spec["gpu"]),
        }
        settings = gpu.device_settings(
            settings, spec["gpu"], speech_emotion_model=spec["gpu"].get("speech_emotion_model")
        )
    load: dict[str, float] = {}

    def loaded(name: str, seconds: float) -> None:
        load[name] = round(seconds, 3)

    return load_engines(settings, loaded, **loaders), load


def _pipeline_warmup(session: dict[str, Any], models: Any) -> None:
    """Run the stages once (``processor.process_audio``) on a few seconds of the first
    chunk: first calls pay one-off costs (JIT compilation, allocator growth, thread pools)
    that a worker pays once in its life, not per session. Timed separately as ``warmup_s``."""
    from processing.progress import Unwatched
    from processor import process_audio

    process_audio(_warmup_audio(session), SpeakerHints(), models, Unwatched())


def _warmup_audio(session: dict[str, Any]) -> Audio:
    from services.audio import decode_audio

    return decode_audio(Path(session["chunks"][0])).slice(0.0, WARMUP_S)


def _pipeline_session(
    session: dict[str, Any], models: Any, settings: Settings, spec: dict[str, Any]
) -> dict[str, Any]:
    """The worker's own sequence on one session: its chunk files put into storage (untimed),
    then ``concatenate_chunks`` and ``processor.process_audio``, as ``processor._process``
    calls them; every stage timed by the clock the stages report to."""
    from processing.chunks import concatenate_chunks
    from processing.clips import store_clips
    from processor import process_audio
    from services.audio import AudioSpool
    from storage import create_storage

    hints = SpeakerHints(num_speakers=session.get("hint"))
    storage = create_storage(settings)
    session_id = uuid.uuid4()
    chunks = _store_chunks(session["chunks"], session_id, storage)
    clock = StageClock(_cuda_sync(spec))
    _reset_peak()
    with AudioSpool(settings.data_dir / "work") as spool:
        clock.enter(Stage.CONCATENATING)
        concatenate_chunks(chunks, storage, spool, skip_bad_chunks=False)
        audio = spool.audio()
        heard = process_audio(audio, hints, models, clock)
        clock.enter(Stage.CLIPS)
        store_clips(audio, heard, session_id, storage, settings)
        clock.stop()
    analysis = heard.analysis
    return _session_result(
        session,
        audio.duration,
        _columns(clock.times),
        speakers_found=len(analysis.speakers),
        words=sum(len(s.words) for s in analysis.segments),
        segments=len(analysis.segments),
        occurrences=len(analysis.occurrences),
    )


def _columns(times: dict[Stage, float]) -> dict[str, float]:
    """Seconds per table column (a column may gather several stages)."""
    columns: dict[str, float] = {}
    for stage, seconds in times.items():
        column = STAGE_COLUMNS[stage]
        columns[column] = columns.get(column, 0.0) + seconds
    return columns


def _store_chunks(files: list[str], session_id: uuid.UUID, storage: Storage) -> list[ChunkRef]:
    """The chunk files as the worker finds them: objects in storage, in upload order."""
    from processing.rows import ChunkRef
    from storage import chunk_key

    chunks = []
    for number, file in enumerate(files):
        key = chunk_key(session_id, number, f"{number:016x}")
        with Path(file).open("rb") as stream:
            storage.put(key, stream)
        chunks.append(ChunkRef(number, key, None))
    return chunks


class StageClock:
    """A ``processing.progress.StageProgress`` that times each stage instead of writing
    progress (``sync`` waits for the GPU before a stage's time is read)."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self._sync = sync
        self._current: Stage | None = None
        self._started = 0.0
        self.times: dict[Stage, float] = {}

    def enter(self, stage: Stage) -> None:
        self.stop()
        self._current, self._started = stage, time.perf_counter()

    def report(self, fraction: float) -> None:
        pass

    def stop(self) -> None:
        if self._current is not None:
            self._sync()
            self.times[self._current] = round(time.perf_counter() - self._started, 3)
            self._current = None


# --- baseline -----------------------------------------------------------------------------


def run_baseline(spec: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lahstats-bench-") as tmp:
        settings = probe_settings(spec, Path(tmp))
        with Stopwatch() as sw:
            recogniser = _load_baseline(settings, spec)
        after_load = proc_status_mib("self", "VmRSS") or 0.0
        load_peak = proc_status_mib("self", "VmHWM")
        with Stopwatch() as warmup:
            if spec.get("warmup", True):
                recogniser(_warmup_audio(spec["sessions"][0]).samples)
        sessions = [_baseline_session(s, recogniser, spec) for s in spec["sessions"]]
    return {
        "mode": "baseline",
        "load_s": {"transcriber": round(sw.seconds, 3)},
        "load_total_s": round(sw.seconds, 3),
        "rss_after_load_mib": after_load,
        "load_peak_rss_mib": load_peak,
        "warmup_s": round(warmup.seconds, 3),
        "sessions": sessions,
        **_device_info(spec),
    }


Recogniser = Callable[[np.ndarray], int]  # 16 kHz mono float32 samples -> words recognised


def _load_baseline(settings: Settings, spec: dict[str, Any]) -> Recogniser:
    """The transcriber the pipeline gets (``--gpu``: the production one), used as faster-whisper
    alone: its ``WhisperModel`` with the worker's device, compute type, threads and decoding
    options (beam size, language, word timestamps, Silero VAD filter), without our hotwords."""
    from services.domain import no_progress
    from services.transcription import FasterWhisperTranscriber, load_faster_whisper_transcriber

    loader: Callable[[Settings], Any] = load_faster_whisper_transcriber
    if spec.get("gpu"):
        import bench.gpu as gpu

        loader = gpu.transcriber_loader(spec["gpu"])
    transcriber = loader(settings)
    if not isinstance(transcriber, FasterWhisperTranscriber):  # --gpu's random-weight Whisper
        return lambda samples: len(transcriber.transcribe(Audio(samples), no_progress))
    whisper = transcriber.whisper

    def recognise(samples: np.ndarray) -> int:
        segments, _ = whisper.transcribe(
            samples,
            language=transcriber.language,
            beam_size=transcriber.beam_size,
            word_timestamps=True,
            vad_filter=transcriber.vad_filter,
        )
        return sum(len(s.words or ()) for s in segments)

    return recognise


def _baseline_session(
    session: dict[str, Any], recognise: Recogniser, spec: dict[str, Any]
) -> dict[str, Any]:
    decode = _baseline_decoder()
    sync = _cuda_sync(spec)
    _reset_peak()
    times: dict[str, float] = {}
    cpu_before = cpu_seconds()
    with Stopwatch() as sw:
        samples = np.concatenate([decode(Path(c)) for c in session["chunks"]])
    times["decode"] = round(sw.seconds, 3)
    with Stopwatch() as sw:
        words = recognise(samples)
        sync()
    times["transcribe"] = round(sw.seconds, 3)
    cpu_s = round(cpu_seconds() - cpu_before, 3)
    duration = Audio(samples.astype(np.float32)).duration
    return {**_session_result(session, duration, times, words=words), "cpu_s": cpu_s}


def _baseline_decoder() -> Callable[[Path], np.ndarray]:
    """faster-whisper's own PyAV reader; where faster-whisper cannot be imported (a GPU
    machine without a CTranslate2 for its CUDA, so the baseline is ``--gpu``'s random-weight
    Whisper anyway), the same PyAV decode through the product's ``decode_audio``."""
    try:
        from faster_whisper import decode_audio as fw_decode
    except ImportError:
        from services.audio import decode_audio

        return lambda path: decode_audio(path).samples
    return lambda path: fw_decode(str(path), sampling_rate=SAMPLE_RATE)


# --- shared -------------------------------------------------------------------------------


def _session_result(
    session: dict[str, Any], duration: float, times: dict[str, float], **counts: int
) -> dict[str, Any]:
    total = sum(times.values())
    return {
        "name": session["name"],
        "audio_s": round(duration, 3),
        "stages_s": times,
        "total_s": round(total, 3),
        "rtf": round(total / duration, 4) if duration else None,
        "peak_rss_mib": proc_status_mib("self", "VmHWM"),
        **counts,
    }


def cpu_seconds() -> float:
    """CPU seconds (user + system, every thread) this process and its waited-for children
    have used so far: decode and ASR threads all count, whatever the wall clock says."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _reset_peak() -> bool:
    """Reset this process's peak resident set (``VmHWM``); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _cuda_sync(spec: dict[str, Any]) -> Callable[[], None]:
    """Wait for queued CUDA work before a stage's clock stops (a no-op on the CPU)."""
    if not spec.get("gpu") or spec["gpu"].get("device", "cuda") != "cuda":
        return lambda: None
    import torch

    return torch.cuda.synchronize


def _device_info(spec: dict[str, Any]) -> dict[str, Any]:
    if not spec.get("gpu"):
        return {"device": "cpu"}
    import bench.gpu as gpu

    return gpu.device_info(spec["gpu"])


if __name__ == "__main__":
    raise SystemExit(main())
