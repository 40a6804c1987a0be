"""The audio the speed benchmarks run on: the corpus conversations as they are, and longer
sessions built once by concatenating corpus speech and cutting it into ~30 s chunks encoded
as a phone would upload them (AAC in .m4a by default), cached under ``bench/results/cache``.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.report import CORPUS, RESULTS_DIR, BenchError

CACHE_DIR = RESULTS_DIR / "cache"
DIARIZATION = CORPUS / "diarization"
SAMPLE_RATE = 16_000
CHUNK_S = 30.0
GAP_S = 0.4  # silence between two corpus files in a built session
# How each chunk format is encoded: 44.1 kHz AAC is what phones record; wav skips the codec.
ENCODERS = {
    "m4a": ["-ar", "44100", "-c:a", "aac", "-b:a", "64k"],
    "ogg": ["-ar", "48000", "-c:a", "libopus", "-b:a", "32k"],
    "wav": ["-ar", "16000", "-c:a", "pcm_s16le"],
}


@dataclass(frozen=True)
class SessionInput:
    """One session to process: its chunk files in upload order, and its reference (if any)."""

    name: str
    chunks: tuple[Path, ...]
    duration_s: float
    rttm: Path | None = None
    uem: Path | None = None
    speakers: int | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "chunks": [str(c) for c in self.chunks],
            "duration_s": self.duration_s,
            "speakers": self.speakers,
        }


def corpus_conversations(only: list[str] | None = None) -> list[SessionInput]:
    """Every recording under ``corpus/diarization`` with its RTTM (and UEM when there is
    one), one chunk each; ``only`` keeps those whose name contains one of the strings."""
    sessions = []
    for wav in sorted(DIARIZATION.glob("*/*.wav")):
        name = wav.stem.removesuffix("_16k")
        rttm = wav.with_name(f"{name}.rttm")
        if not rttm.exists() or (only and not any(o in name for o in only)):
            continue
        uem = wav.with_name(f"{name}.uem")
        sessions.append(
            SessionInput(
                name=name,
                chunks=(wav,),
                duration_s=round(_wav_seconds(wav), 3),
                rttm=rttm,
                uem=uem if uem.exists() else None,
                speakers=len(rttm_speakers(rttm)),
            )
        )
    if not sessions:
        raise BenchError(f"no corpus conversations under {DIARIZATION}")
    return sessions


def rttm_speakers(rttm: Path) -> set[str]:
    return {line.split()[7] for line in rttm.read_text().splitlines() if line.startswith("SPEAKER")}


def built_session(minutes: float, fmt: str = "m4a", cache_dir: Path = CACHE_DIR) -> SessionInput:
    """A ``minutes``-long session of corpus speech in ``CHUNK_S`` chunks of format ``fmt``,
    built on first use and reused after (the cache key is the length and format)."""
    if fmt not in ENCODERS:
        raise BenchError(f"unknown chunk format {fmt!r}; pick one of {sorted(ENCODERS)}")
    name = f"session_{minutes:g}min_{fmt}"
    folder = cache_dir / name
    done = folder / "complete"
    if not done.exists():
        if not shutil.which("ffmpeg"):  # a session built before travels without it
            raise BenchError("building sessions needs ffmpeg on PATH")
        _build(folder, minutes * 60.0, fmt)
        done.write_text("ok\n")
    chunks = tuple(sorted(folder.glob(f"chunk_*.{fmt}")))
    return SessionInput(name=f"{minutes:g} min", chunks=chunks, duration_s=round(minutes * 60, 3))


def _build(folder: Path, seconds: float, fmt: str) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    samples = _speech_stream(seconds)
    per_chunk = int(CHUNK_S * SAMPLE_RATE)
    for number, start in enumerate(range(0, len(samples), per_chunk)):
        raw = folder / f"chunk_{number:04d}.raw.wav"
        _write_wav(raw, samples[start : start + per_chunk])
        _encode(raw, folder / f"chunk_{number:04d}.{fmt}", fmt)
        raw.unlink()


def _speech_stream(seconds: float) -> npt.NDArray[np.int16]:
    """Corpus speech (16 kHz mono int16), every file once in name order, then again from
    the start, with ``GAP_S`` of silence between files, cut at ``seconds``."""
    files = _corpus_wavs()
    total = int(seconds * SAMPLE_RATE)
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.int16)
    pieces: list[npt.NDArray[np.int16]] = []
    have = 0
    while have < total:
        for path in files:
            for piece in (_read_wav(path), gap):
                pieces.append(piece)
                have += len(piece)
            if have >= total:
                break
    return np.concatenate(pieces)[:total]


def _corpus_wavs() -> list[Path]:
    """The 16 kHz mono 16-bit corpus recordings (those in other formats are skipped)."""
    usable = []
    for path in sorted(CORPUS.glob("*/**/*.wav")):
        with wave.open(str(path)) as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2):
                usable.append(path)
    if not usable:
        raise BenchError(f"no 16 kHz mono wav files under {CORPUS}")
    return usable


def _read_wav(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def _write_wav(path: Path, samples: npt.NDArray[np.int16]) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype("<i2").tobytes())


def _encode(source: Path, target: Path, fmt: str) -> None:
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source)]
    command += ["-ac", "1", *ENCODERS[fmt], str(target)]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    except subprocess.CalledProcessError as exc:
        raise BenchError(f"ffmpeg could not encode {target.name}: {exc.stderr!r}") from exc


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()
