"""Generate the demo conversation in ``samples/singlish/`` from its script.

Run from the repository root (needs espeak-ng and sox, as ``../shared/singlish/make.py`` does)::

    .venv/bin/python -m scripts.make_demo            # rewrite the committed files
    .venv/bin/python -m scripts.make_demo --check    # regenerate elsewhere, fail on any difference

``samples/singlish/script.tsv`` holds the lines, written for LahStats: three friends at a
hawker centre, three espeak-ng voices. ``../shared/singlish/make.py`` speaks them (called, not
copied: its pronunciations, seeded pauses and counting rule are the dev set's) and writes the
exact references; this script keeps what the demo needs:

- ``hawker_supper.flac``: the audio, losslessly compressed (the same samples as make.py's WAV
  at a third of the size);
- ``hawker_supper.counts.json``: what each person said, per target word: the expectation;
- ``hawker_supper.rttm`` / ``.stm``: who spoke when, and the words of each turn;
- ``manifest.json``: the tool versions, the sha256 of the samples and of every file.

The same script, seed, espeak-ng and sox give the same samples (make.py's guarantee); the
manifest names the versions, since another espeak-ng may sound slightly different.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "samples" / "singlish"
SCRIPT = DEMO / "script.tsv"
CONVERSATION = "hawker_supper"
SINGLISH = REPO.parent / "shared" / "singlish"
COPIED = (".counts.json", ".rttm", ".stm")


class DemoError(RuntimeError):
    """The demo could not be generated, or differs from what is committed."""


def generate(out: Path, singlish: Path = SINGLISH) -> dict[str, Any]:
    """Speak ``script.tsv`` with make.py and write the demo's files and manifest into ``out``."""
    with tempfile.TemporaryDirectory(prefix="lahstats-demo-") as scratch:
        spoken = Path(scratch)
        done = subprocess.run(
            [sys.executable, str(singlish / "make.py"), "--script", str(SCRIPT), "--out", scratch],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise DemoError(f"make.py failed: {done.stderr.strip()}")
        made = json.loads((spoken / "manifest.json").read_text())
        out.mkdir(parents=True, exist_ok=True)
        samples, rate = soundfile.read(spoken / f"{CONVERSATION}.wav", dtype="int16")
        soundfile.write(out / f"{CONVERSATION}.flac", samples, rate, subtype="PCM_16")
        for suffix in COPIED:
            name = f"{CONVERSATION}{suffix}"
            (out / name).write_bytes((spoken / name).read_bytes())
    conversation = made["conversations"][CONVERSATION]
    manifest = {
        "generator": "python -m scripts.make_demo (../shared/singlish/make.py)",
        "licence": "CC0-1.0",
        **{key: made[key] for key in ("seed", "espeak_ng", "sox", "sample_rate", "script_sha256")},
        "duration_s": conversation["duration_s"],
        "speakers": conversation["speakers"],
        "target_total": conversation["target_total"],
        "pcm_sha256": pcm_sha256(out / f"{CONVERSATION}.flac"),
        "files": {
            path.name: _sha256(path)
            for path in sorted(out.iterdir())
            if path.name.startswith(CONVERSATION)
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def pcm_sha256(path: Path) -> str:
    """The sha256 of an audio file's samples as 16-bit little-endian PCM (the container's
    bytes left out, so a FLAC and the WAV it was made from hash alike)."""
    samples, _ = soundfile.read(path, dtype="int16")
    return hashlib.sha256(np.asarray(samples, "<i2").tobytes()).hexdigest()


def differences(committed: dict[str, Any], regenerated: dict[str, Any]) -> list[str]:
    """What differs between two manifests: the samples, and every file but the FLAC (whose
    bytes depend on the libsndfile that wrote them; its samples are compared instead)."""
    found = []
    if committed["pcm_sha256"] != regenerated["pcm_sha256"]:
        found.append("the audio samples")
    for name, digest in committed["files"].items():
        if not name.endswith(".flac") and regenerated["files"].get(name) != digest:
            found.append(name)
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--singlish", type=Path, default=SINGLISH, help="the make.py folder")
    args = parser.parse_args()
    if not args.check:
        manifest = generate(DEMO, args.singlish)
        print(f"wrote {DEMO}: {manifest['duration_s']} s, {manifest['target_total']} target words")
        return
    committed = json.loads((DEMO / "manifest.json").read_text())
    with tempfile.TemporaryDirectory() as again:
        found = differences(committed, generate(Path(again), args.singlish))
    if found:
        sys.exit(f"the committed demo differs from a fresh one: {', '.join(found)}")
    print("the committed demo is what the script makes")


if __name__ == "__main__":
    main()
