"""``python -m research.coda_cost``: what the finish of a live session spends hearing its last
chunk, before and after the coda (issue 16).

Before, the finish heard the last chunk's whole stretch again, to its end
(``stretch_of(..., final=True)``, ~30 s); now it hears only the coda (``coda_of``: from the
chunk's cut to its end). Each chunk of the 5-minute built session (``bench.inputs``) is taken
as if it were the last one; both are heard by the product's ``transcribe`` and counted in
Whisper encoder passes (one per 30 s window: the cost that does not shrink with the audio) and
CPU seconds, the coda also without the short-clip token budget
(``services.transcription.token_budget``) to show what the budget saves.
"""

from __future__ import annotations

import time
from typing import Any
from unittest.mock import patch

import services.transcription as transcription
from bench.inputs import built_session
from config import Settings
from services.audio import decode_audio
from services.domain import Audio
from services.hearing import coda_of, stretch_of


def _counting_encoder(whisper: Any) -> dict[str, int]:
    """Count the encoder passes of ``whisper`` (a faster-whisper model) from now on."""
    calls = {"encode": 0}
    encode = whisper.encode

    def counted(features: Any) -> Any:
        calls["encode"] += 1
        return encode(features)

    whisper.encode = counted
    return calls


def _heard(audio: Audio, transcriber: Any, calls: dict[str, int]) -> tuple[int, float, int]:
    calls["encode"] = 0
    started = time.process_time()
    words = sum(len(s.words) for s in transcription.transcribe(audio, transcriber))
    return calls["encode"], time.process_time() - started, words


def main() -> None:
    transcriber = transcription.load_faster_whisper_transcriber(Settings())
    calls = _counting_encoder(transcriber.whisper)
    chunks = [decode_audio(p) for p in built_session(5).chunks]
    totals = {"final": [0, 0.0], "coda": [0, 0.0], "coda, no budget": [0, 0.0]}
    print(
        "chunk | final stretch s, passes, CPU s | coda s, passes, CPU s | no budget: passes, CPU s"
    )
    for i in range(1, len(chunks)):
        final = stretch_of(chunks[i - 1], chunks[i], final=True)
        coda = coda_of(chunks[i])
        row = [f"{i}", f"{final.audio.duration:.1f}"]
        f = _heard(final.audio, transcriber, calls)
        totals["final"][0] += f[0]
        totals["final"][1] += f[1]
        row += [str(f[0]), f"{f[1]:.2f}"]
        if coda is None:
            print(" | ".join([*row, "-"]))
            continue
        c = _heard(coda.audio, transcriber, calls)
        with patch.object(transcription, "token_budget", lambda _duration: None):
            n = _heard(coda.audio, transcriber, calls)
        for key, got in (("coda", c), ("coda, no budget", n)):
            totals[key][0] += got[0]
            totals[key][1] += got[1]
        row += [f"{coda.audio.duration:.2f}", str(c[0]), f"{c[1]:.2f}", str(n[0]), f"{n[1]:.2f}"]
        print(" | ".join(row))
    for key, (passes, cpu) in totals.items():
        print(f"total {key}: {passes} encoder passes, {cpu:.1f} CPU s")


if __name__ == "__main__":
    main()
