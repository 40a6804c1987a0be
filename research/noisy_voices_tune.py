"""``python -m research.noisy_voices_tune``: a noisy, new-voice **tune** set, like the
never-tuned set (``bench/singlish_unseen.py``) in kind but not in content, as
``bench/results/cache/singlish_noisy_voices``.

Its script (``research/data/singlish_noisy_voices.tsv``, 9 conversations) is new: no line, voice
variant or babble talker of the never-tuned set is reused, only its generator functions (the cafe
recipe and the mixing at a signal-to-noise ratio). Every conversation is noisy, reversed-speech
babble of talkers of its own or a synthetic cafe, at 10-20 dB. It exists so that the confidence
calibration sees on the tune side what fooled it on the never-tuned set: runs of target words the
hotword-prompted decoder wrote over noisy speech it could not read.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from bench.inputs import CACHE_DIR
from bench.singlish_unseen import babble_bed, spoken, with_noise

SCRIPT = Path(__file__).parent / "data" / "singlish_noisy_voices.tsv"
SEED = 20261214
# conversation -> (noise, SNR dB over the speech)
CONDITIONS: dict[str, tuple[str, float]] = {
    "n01_hawker_dinner": ("babble", 12.0),
    "n02_bus_interchange": ("cafe", 10.0),
    "n03_project_meeting": ("babble", 18.0),
    "n04_pasar_malam": ("babble", 10.0),
    "n05_army_reunion": ("cafe", 15.0),
    "n06_tuition_centre": ("babble", 15.0),
    "n07_chalet_booking": ("cafe", 20.0),
    "n08_hospital_visit": ("babble", 20.0),
    "n09_mahjong_new_year": ("cafe", 12.0),
}
# Babble talkers: variants neither the script nor any other set uses, reading plain English
# with no target word and no trap, reversed in time (voices without words).
BABBLE_VOICES = ("en-029+Gene2", "en-gb-scotland+iven4", "en+m3", "en+f2", "en-us+kaukovalta")
BABBLE_TEXT = (
    "The museum opened a new gallery of old photographs from the harbour and the river. "
    "Visitors can follow the history of the port from the first warehouses to the container "
    "terminals, and a guide explains how the ships were loaded before the cranes arrived."
)


def noisy_voices_set(cache: Path = CACHE_DIR / "singlish_noisy_voices") -> Path:
    """The set's folder (``<conv>.wav/.rttm/.stm/.counts.json``, ``manifest.json``), made once
    (about a minute; espeak-ng and sox)."""
    if (cache / "manifest.json").exists():
        return cache
    with tempfile.TemporaryDirectory(prefix="singlish-noisy-voices-") as scratch:
        clean = Path(scratch) / "clean"
        manifest = spoken(SCRIPT, SEED, clean)
        cache.mkdir(parents=True, exist_ok=True)
        babble = babble_bed(Path(scratch), BABBLE_VOICES, BABBLE_TEXT, stride=4801, first=1)
        for i, (name, info) in enumerate(manifest["conversations"].items()):
            noise, snr_db = CONDITIONS[name]
            rng = np.random.default_rng([SEED, i])
            with_noise(clean, cache, name, (noise, snr_db), babble, rng)
            info["noise"], info["snr_db"] = noise, snr_db
        manifest["script"] = str(SCRIPT.name)
        (cache / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return cache


if __name__ == "__main__":
    print(noisy_voices_set())
