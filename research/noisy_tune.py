"""``python -m research.noisy_tune``: the train tune set (``research/data/singlish_train.tsv``)
again, mixed with a synthetic cafe (pink noise and clinks; ``bench.singlish_unseen``'s
generator, no voices, no words) at 10-20 dB SNR, as ``bench/results/cache/singlish_train_noisy``.

Nothing of the never-tuned set is used but the noise recipe: its scripts, voices and babble
stay out. It gives the tune side noisy speech to fit the confidence on, since the never-tuned
set is noisy and the tune sets were clean.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.inputs import CACHE_DIR
from bench.singlish_unseen import with_noise
from research.calibrate_confidence import train_set

SNR_DB = (10.0, 12.0, 15.0, 15.0, 18.0, 20.0)  # one per conversation, in manifest order
SEED = 14


def noisy_train_set(cache: Path = CACHE_DIR / "singlish_train_noisy") -> Path:
    """The folder, made once from the clean train set."""
    if (cache / "manifest.json").exists():
        return cache
    clean = train_set()
    manifest = json.loads((clean / "manifest.json").read_text())
    cache.mkdir(parents=True, exist_ok=True)
    silent = np.zeros(1, dtype=np.float32)  # no babble: cafe only
    for i, (name, info) in enumerate(manifest["conversations"].items()):
        snr_db = SNR_DB[i % len(SNR_DB)]
        rng = np.random.default_rng([SEED, i])
        with_noise(clean, cache, name, ("cafe", snr_db), silent, rng)
        info["noise"], info["snr_db"] = "cafe", snr_db
    (cache / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return cache


if __name__ == "__main__":
    print(noisy_train_set())
