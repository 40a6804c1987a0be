"""``python -m research.lookahead_cost [LOOKAHEAD_S ...]``: what a live session's hearing spends
with each recogniser lookahead (issue 16; default ``0 3 0 3``: main's hearing and the kept one,
alternating, in one process so the ratios are comparable on a shared machine).

Every stretch of the Singlish dev set's conversations, cut into the product's 30 s chunks,
is heard by the product's ``processor.hear_chunks`` (recognition, the verifier's listen, the
diarizer's windows) with ``services.hearing.LOOKAHEAD_S`` set to each value in turn; printed:
Whisper encoder passes (faster-whisper's own, not the verifier's) and CPU seconds per audio minute.
The dev set is the bench's (generated on first use)."""

from __future__ import annotations

import sys
import time
from typing import Any, cast

import services.hearing as hearing
from bench.quality import chunks_of, singlish_dev_set
from config import Settings
from processor import hear_chunks, load_engines
from research.coda_cost import _counting_encoder
from services.audio import decode_audio


def main(lookaheads: list[float]) -> None:
    engines = load_engines(Settings())
    calls = _counting_encoder(cast(Any, engines.transcriber).whisper)  # the faster-whisper one
    wavs = sorted(singlish_dev_set().glob("*.wav"))
    recordings = [chunks_of(decode_audio(wav)) for wav in wavs]
    minutes = sum(chunk.duration for chunks in recordings for chunk in chunks) / 60
    for lookahead in lookaheads:
        hearing.LOOKAHEAD_S = lookahead
        calls["encode"] = 0
        cpu = time.process_time()
        for chunks in recordings:
            hear_chunks(chunks, engines)
        cpu = time.process_time() - cpu
        print(
            f"lookahead {lookahead:g} s: {calls['encode']} encoder passes, {cpu:.1f} CPU s, "
            f"{cpu / minutes:.2f} CPU s per audio minute ({minutes:.1f} min)",
            flush=True,
        )


if __name__ == "__main__":
    main([float(x) for x in sys.argv[1:]] or [0.0, 3.0, 0.0, 3.0])
