"""Install-time warm-up: import every offline model's library once, so numba compiles
librosa's kernels (slow, then cached in site-packages) here rather than in a user's first job."""

from __future__ import annotations

import time

import numpy as np


def main() -> None:
    started = time.perf_counter()
    import librosa

    # resample and the mel filterbank are what Resemblyzer's preprocessing can touch
    tone = np.sin(np.linspace(0, 2000, 16_000)).astype(np.float32)
    librosa.resample(tone, orig_sr=16_000, target_sr=8_000)
    librosa.feature.melspectrogram(y=tone, sr=16_000)
    import faster_whisper  # noqa: F401
    import resemblyzer  # noqa: F401
    import webrtcvad  # noqa: F401

    print(f"warm-up done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
