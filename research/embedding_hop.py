"""``python -m research.embedding_hop --hops 40 60 80``: what the Resemblyzer diarizer's window
hop (``services.diarization.HOP_FRAMES``, 10 ms frames) costs in CPU and gives in DER, on the tune
side only (AMI trn00-04, the corpus's clean conversations, the generated Singlish dev set; the
sessions of ``research.bundled_diarizer_sweep``).

The window embeddings are a fifth of a live chunk job's CPU beside faster-whisper's own
(``research/chunk_job_cost.py``): each 1.6 s window every 0.4 s runs every mel frame through the
encoder's LSTM four times. Each hop is run over every recording (``find_turns``, as the batch path
and, per stretch, the chunk jobs run it), with the true speaker count and without, DER scored as
``bench quality`` scores it and pooled per group, and the CPU seconds of the whole diarization
counted per audio minute. The never-tuned groups are ``bench quality --parts der``'s to report.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.quality import _reference, annotation_of
from bench.report import console, table
from research.bundled_diarizer_sweep import _tune_side
from services import diarization
from services.audio import decode_audio
from services.diarization import (
    MIN_SPEAKER_S,
    ResemblyzerDiarizer,
    canonical_turns,
    speaker_range,
    without_minor_speakers,
)
from services.domain import SpeakerHints, no_progress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hops", nargs="+", type=int, default=[diarization.HOP_FRAMES])
    args = parser.parse_args()
    import torch
    from pyannote.metrics.diarization import DiarizationErrorRate

    torch.set_num_threads(1)  # as the worker runs it (TORCH_CPU_THREADS=1)
    diarizer = ResemblyzerDiarizer.load("cpu", 8)
    metrics: dict[tuple[str, int, str], Any] = {}
    cpu: dict[int, float] = dict.fromkeys(args.hops, 0.0)
    minutes = 0.0
    with tempfile.TemporaryDirectory() as singlish:
        for group, conversation in _tune_side(Path(singlish)):
            audio = decode_audio(conversation.chunks[0])
            reference, uem = _reference(conversation, audio)
            minutes += audio.duration / 60
            for hop in args.hops:
                diarization.HOP_FRAMES = hop
                for count, hints in (
                    ("true", SpeakerHints(num_speakers=conversation.speakers)),
                    ("own", SpeakerHints()),
                ):
                    started = time.process_time()
                    turns = diarizer.find_turns(audio, speaker_range(hints, 8), no_progress)
                    if count == "true":
                        cpu[hop] += time.process_time() - started
                    kept = without_minor_speakers(canonical_turns(turns), MIN_SPEAKER_S)
                    metric = metrics.setdefault(
                        (group, hop, count), DiarizationErrorRate(collar=0.5, skip_overlap=False)
                    )
                    metric(reference, annotation_of(kept, conversation.name), uem=uem)
            console.print(f"{group} {conversation.name}")
    groups = sorted({group for group, _, _ in metrics})
    counts = ("true", "own")
    rows = [
        [hop, round(cpu[hop] / minutes, 3)]
        + [round(abs(metrics[group, hop, count]), 4) for group in groups for count in counts]
        for hop in args.hops
    ]
    columns = ["hop (frames)", "CPU s / audio min"]
    columns += [f"{group} DER, {count} count" for group in groups for count in counts]
    console.print(table("Resemblyzer window hop, tune side", columns, rows))


if __name__ == "__main__":
    main()
