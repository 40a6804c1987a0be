"""``python -m research.listen_cost``: what the second listen costs against transcription, with
two dictionaries, in one process (the same loaded Whisper, the same moment of the machine).

For each conversation of a generated set: the default transcription (timed), then
``services.singlish.listen_again`` with the shipped dictionary and with ``--corrections`` (each
timed, in alternating order), on the same utterances. Prints the seconds and the ratios to
the transcription's.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from bench.report import console, table
from research.particles import SETS


def main() -> None:
    from config import Settings
    from processor import load_engines
    from services.assignment import assign_speakers
    from services.audio import decode_audio
    from services.diarization import hear_speakers
    from services.domain import SpeakerHints
    from services.singlish import listen_again
    from services.singlish.dictionary import load_corrections
    from services.transcription import transcribe

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--set", choices=list(SETS), default="dev")
    parser.add_argument("--corrections", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=2)
    args = parser.parse_args()
    engines = load_engines(Settings())
    shipped = engines.singlish
    other = replace(shipped, corrections=load_corrections(args.corrections))
    manifest = json.loads((SETS[args.set] / "manifest.json").read_text())
    rows, totals = [], [0.0, 0.0, 0.0]
    for i, name in enumerate(list(manifest["conversations"])[: args.limit]):
        audio = decode_audio(SETS[args.set] / f"{name}.wav")
        diarization = hear_speakers(audio, engines.diarizer, SpeakerHints())
        started = time.perf_counter()
        segments = transcribe(audio, engines.transcriber)
        asr_s = time.perf_counter() - started
        utterances = assign_speakers(segments, diarization.exclusive)
        seconds = {}
        order = [("shipped", shipped), ("other", other)]
        for label, singlish in order if i % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            listen_again(audio, utterances, singlish)
            seconds[label] = time.perf_counter() - started
        totals = [
            totals[0] + asr_s,
            totals[1] + seconds["shipped"],
            totals[2] + seconds["other"],
        ]
        rows.append([name, round(audio.duration, 1), round(asr_s, 1)])
        rows[-1] += [round(seconds["shipped"], 2), round(seconds["other"], 2)]
    rows.append(["all", "", *(round(t, 1) for t in totals)])
    columns = ["conversation", "audio s", "ASR s", "listen s (shipped)", "listen s (--corrections)"]
    console.print(table("second listen against ASR", columns, rows))
    asr, before, after = totals
    console.print(
        f"listen/ASR: shipped {before / asr:.3f}, --corrections {after / asr:.3f}; "
        f"ASR + listen, --corrections / shipped: {(asr + after) / (asr + before):.3f}"
    )


if __name__ == "__main__":
    main()
