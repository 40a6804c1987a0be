"""``python -m research.stop_at_cut [dev|unseen ...]``: what a live stretch's recognition
spends when Whisper stops once it has heard past the stretch's cut (issue 16), against hearing
its lookahead to the end as before, and whether the kept words differ.

Every stretch with a lookahead of the named sets' conversations, cut into the product's 30 s
chunks (``services.hearing.chunk_stretches``), is recognised by ``services.hearing.recognise``
twice in turn, alternating which goes first: with the product's early stop (``until`` the cut)
and with ``until`` left out (the whole lookahead heard). Printed per set: Whisper encoder passes
(faster-whisper's own ``encode``), CPU seconds per audio minute, and the stretches whose kept
words differ (text and times to 10 ms). The sets are the bench's (generated on first use)."""

from __future__ import annotations

import sys
import time
from typing import Any, cast

import services.hearing as hearing
from bench.quality import chunks_of, singlish_dev_set
from bench.singlish_unseen import singlish_unseen_set
from config import Settings
from processor import load_engines
from research.coda_cost import _counting_encoder
from services.audio import decode_audio
from services.domain import TranscriptSegment
from services.transcription import Transcriber

SETS = {"dev": singlish_dev_set, "unseen": singlish_unseen_set}


def _kept(segments: tuple[TranscriptSegment, ...]) -> list[tuple[str, float, float]]:
    return [(w.text, round(w.start, 2), round(w.end, 2)) for s in segments for w in s.words]


class _Whole:
    """The product's recogniser with the early stop turned off (``until`` dropped)."""

    def __init__(self, transcriber: Transcriber) -> None:
        self.transcriber = transcriber

    def transcribe(self, audio: Any, on_progress: Any, until: float | None = None) -> Any:
        return self.transcriber.transcribe(audio, on_progress, None)


def main(names: list[str]) -> None:
    engines = load_engines(Settings())
    calls = _counting_encoder(cast(Any, engines.transcriber).whisper)
    ways = {"stop at cut": engines.transcriber, "whole lookahead": _Whole(engines.transcriber)}
    for name in names:
        wavs = sorted(SETS[name]().glob("*.wav"))
        stretches = [
            stretch
            for wav in wavs
            for _start, stretch in hearing.chunk_stretches(chunks_of(decode_audio(wav)))
            if len(stretch.lookahead.samples)
        ]
        minutes = sum(s.audio.duration for s in stretches) / 60
        totals = {way: [0, 0.0] for way in ways}
        differ = 0
        for i, stretch in enumerate(stretches):
            order = list(ways) if i % 2 == 0 else list(reversed(ways))
            heard = {}
            for way in order:
                calls["encode"] = 0
                cpu = time.process_time()
                heard[way] = _kept(hearing.recognise(stretch, cast(Transcriber, ways[way])))
                totals[way][1] += time.process_time() - cpu
                totals[way][0] += calls["encode"]
            if heard["stop at cut"] != heard["whole lookahead"]:
                differ += 1
                print(
                    f"  stretch {i} differs:",
                    heard["stop at cut"][-3:],
                    heard["whole lookahead"][-3:],
                )
        for way, (passes, cpu) in totals.items():
            print(
                f"{name}: {way}: {len(stretches)} stretches, {passes} encoder passes, "
                f"{cpu:.1f} CPU s, {cpu / minutes:.2f} CPU s per audio minute ({minutes:.1f} min)",
                flush=True,
            )
        print(f"{name}: stretches whose kept words differ: {differ} of {len(stretches)}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["dev", "unseen"])
