"""The never-tuned Singlish set (issue 14): ``bench/data/singlish_unseen.tsv`` spoken by
``shared/singlish/make.py``, then each conversation mixed with the noise of a place.

Nothing is tuned on it: the dictionary, the rules and every threshold are chosen on the dev set
(``shared/singlish/script_dev.tsv``) and ``research/data`` only, and this set is reported beside
it (``python -m bench quality --parts singlish``).

What makes it harder than the dev set: 31 other espeak-ng voice variants (pitch 35-80, 140-190
words a minute), English traps for every target word, short replies ("Can lah!", "Walao!"), and
background noise: quiet, far-off babble (reversed espeak-ng speech of other voices, so it has
no words to transcribe), or a cafe (pink noise with the clinks of cups and plates), at 10-20 dB
signal-to-noise over the speech. References are make.py's, untouched (the noise adds no words).

Generated once into ``bench/results/cache/singlish_unseen`` (about a minute; needs espeak-ng and
sox) and reused, like the dev set.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs import CACHE_DIR
from bench.report import REPO, SHARED, BenchError

SCRIPT = REPO / "bench" / "data" / "singlish_unseen.tsv"
SAMPLE_RATE = 16000
SEED = 20261130
# conversation -> (noise, SNR dB over the speech); "clean" keeps make.py's audio
CONDITIONS: dict[str, tuple[str, float]] = {
    "u01_kopitiam_breakfast": ("cafe", 15.0),
    "u02_condo_committee": ("clean", 0.0),
    "u03_office_pantry": ("babble", 15.0),
    "u04_wet_market": ("babble", 10.0),
    "u05_mrt_commute": ("cafe", 10.0),
    "u06_wedding_plans": ("babble", 20.0),
    "u07_badminton_night": ("clean", 0.0),
    "u08_school_holidays": ("cafe", 20.0),
    "u09_car_workshop": ("babble", 12.0),
    "u10_housewarming": ("cafe", 12.0),
    "u11_group_chat": ("babble", 18.0),
}
# Babble talkers: voices the script does not use, reading plain English with no target word
# and no trap; reversed in time, so the recogniser hears voices but no words.
BABBLE_VOICES = ("en-us+m5", "en-gb+f3", "en-029+m7", "en-gb-x-rp+f2", "en-us-nyc+m6")
BABBLE_TEXT = (
    "The committee reviewed the annual budget and approved the new library wing in the north. "
    "Several members asked about the parking arrangements during the construction period, "
    "and the engineer promised a detailed plan before the end of the month."
)


def singlish_unseen_set(cache: Path = CACHE_DIR / "singlish_unseen") -> Path:
    """The set's folder (``<conv>.wav/.rttm/.stm/.counts.json``, ``manifest.json``), generated
    on first use."""
    if (cache / "manifest.json").exists():
        return cache
    missing = [tool for tool in ("espeak-ng", "sox") if not shutil.which(tool)]
    if missing:
        raise BenchError(f"the Singlish unseen set needs {' and '.join(missing)} (apt-get install)")
    with tempfile.TemporaryDirectory(prefix="singlish-unseen-") as scratch:
        clean = Path(scratch) / "clean"
        manifest = spoken(SCRIPT, SEED, clean)
        cache.mkdir(parents=True, exist_ok=True)
        babble = babble_bed(Path(scratch), BABBLE_VOICES, BABBLE_TEXT, stride=7919)
        for name, info in manifest["conversations"].items():
            noise, snr_db = CONDITIONS[name]
            rng = np.random.default_rng([SEED, sorted(CONDITIONS).index(name)])
            with_noise(clean, cache, name, (noise, snr_db), babble, rng)
            info["noise"], info["snr_db"] = noise, snr_db
        manifest["script"] = str(SCRIPT.relative_to(REPO))
        (cache / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return cache


def spoken(script: Path, seed: int, out: Path) -> dict[str, Any]:
    """``script``'s conversations spoken by ``shared/singlish/make.py`` into ``out``
    (``<conv>.wav/.rttm/.stm/.counts.json``); returns its manifest."""
    done = subprocess.run(
        [
            *(sys.executable, str(SHARED / "singlish" / "make.py"), "--script", str(script)),
            *("--out", str(out), "--seed", str(seed)),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise BenchError(f"make.py failed: {done.stderr[-2000:]}")
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    return manifest


def with_noise(
    clean: Path,
    out: Path,
    name: str,
    condition: tuple[str, float],
    babble: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Conversation ``name`` of ``clean`` into ``out``: its references as they are, its audio
    mixed with ``condition`` (noise, SNR dB; "clean" keeps it as it is)."""
    for suffix in (".rttm", ".stm", ".counts.json"):
        shutil.copyfile(clean / f"{name}{suffix}", out / f"{name}{suffix}")
    speech = _read(clean / f"{name}.wav")
    noise, snr_db = condition
    _write(
        out / f"{name}.wav",
        speech if noise == "clean" else _mix(speech, noise, snr_db, babble, rng),
    )


def _mix(
    speech: np.ndarray, noise: str, snr_db: float, babble: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``speech`` (float32, -1..1) plus ``noise`` scaled to ``snr_db`` below the power of the
    speech itself (samples above -40 dBFS)."""
    if noise == "babble":
        offset = int(rng.integers(len(babble)))
        bed = np.resize(np.roll(babble, offset), len(speech))
    else:
        bed = _cafe(len(speech), rng)
    loud = speech[np.abs(speech) > 0.01]
    speech_power = float(np.mean(loud**2)) if len(loud) else 1e-4
    scale = np.sqrt(speech_power / (float(np.mean(bed**2)) * 10 ** (snr_db / 10)))
    mixed = speech + scale * bed
    return (mixed / max(1.0, float(np.max(np.abs(mixed))) / 0.98)).astype(np.float32)


def _cafe(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink noise (a room's hum and far talk) with a clink (a decaying 2-5 kHz tone, 50-150 ms)
    every 0.5-4 s."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(freqs, 20.0)), n)
    pink /= np.std(pink)
    t = 0.0
    while True:
        t += rng.uniform(0.5, 4.0)
        start = int(t * SAMPLE_RATE)
        if start >= n:
            break
        length = min(n - start, int(rng.uniform(0.05, 0.15) * SAMPLE_RATE))
        k = np.arange(length) / SAMPLE_RATE
        tone = np.sin(2 * np.pi * rng.uniform(2000, 5000) * k) * np.exp(-k * 40)
        pink[start : start + length] += rng.uniform(2.0, 6.0) * tone
    return pink


def babble_bed(
    scratch: Path, voices: Sequence[str], text: str, *, stride: int, first: int = 0
) -> np.ndarray:
    """A babble bed: each of ``voices`` reading ``text``, reversed (voices without words),
    talker i started ``stride * (first + i)`` samples elsewhere, summed (16 kHz float32, about
    15 s; ``_mix`` loops it)."""
    talkers = []
    for i, voice in enumerate(voices):
        raw, out = scratch / f"babble{i}_22k.wav", scratch / f"babble{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True)
        subprocess.run(
            ["sox", "-R", "-D", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(out)],
            check=True,
        )
        talkers.append(np.roll(_read(out)[::-1], stride * (first + i)))
    n = min(len(t) for t in talkers)
    return np.sum([t[:n] for t in talkers], axis=0)


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def _write(path: Path, samples: np.ndarray) -> None:
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
