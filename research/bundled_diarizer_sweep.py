"""``python -m research.bundled_diarizer_sweep``: how the bundled diarizer's settings score on
the tune side only (AMI trn00-04, the corpus's clean conversations, the generated Singlish dev
conversations), the sweep behind ``services.bundled_diarizer``'s constants.

Segmentation and embeddings are computed once per recording and setting of ``--set``; each
distance threshold in ``--thresholds`` then clusters them again, with the true speaker count
and without one. DER as ``bench quality`` scores it (±0.25 s collar, overlap scored, UEM),
pooled per group. The never-tuned files are not read here: report them with
``DIARIZATION_BACKEND=bundled python -m bench quality --parts der``.

Example: ``python -m research.bundled_diarizer_sweep --set STEP_S=5.0 MAX_EMBED_S=4.0
--thresholds 0.3 0.35 0.4``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.farfield import AMI_SPLIT
from bench.inputs import SessionInput, corpus_conversations, rttm_speakers
from bench.quality import _reference, annotation_of
from bench.report import SHARED
from services import bundled_diarizer as bd
from services.audio import decode_audio
from services.diarization import (
    MIN_SPEAKER_S,
    canonical_turns,
    speaker_range,
    without_minor_speakers,
)
from services.domain import SpeakerHints, no_progress

CLEAN = ("sample", "an4", "leopard")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", nargs="*", default=[], help="NAME=VALUE module constants")
    parser.add_argument("--thresholds", nargs="+", type=float, default=[bd.SAME_SPEAKER_DISTANCE])
    args = parser.parse_args()
    for assignment in args.set:
        name, value = assignment.split("=", 1)
        setattr(bd, name, type(getattr(bd, name))(value))
    from pyannote.metrics.diarization import DiarizationErrorRate

    diarizer = bd.BundledDiarizer.load("cpu", 8)
    metrics: dict[str, dict[str, Any]] = {}
    seconds = audio_seconds = 0.0
    with tempfile.TemporaryDirectory() as singlish:
        for group, conversation in _tune_side(Path(singlish)):
            audio = decode_audio(conversation.chunks[0])
            reference, uem = _reference(conversation, audio)
            started = time.perf_counter()
            segmentation = diarizer.segment(audio, no_progress)
            locals_, embeddings = diarizer.embed(audio, segmentation, no_progress)
            seconds += time.perf_counter() - started
            audio_seconds += audio.duration
            windows = np.array([local.window for local in locals_], dtype=np.int64)
            row = [conversation.name]
            for threshold in args.thresholds:
                bd.SAME_SPEAKER_DISTANCE = threshold
                for count, hints in (
                    ("true", SpeakerHints(num_speakers=conversation.speakers)),
                    ("own", SpeakerHints()),
                ):
                    turns: tuple[Any, ...] = ()
                    if locals_:
                        labels = bd.cluster(
                            embeddings, speaker_range(hints, 8), bd.most_voices_at_once(windows)
                        )
                        mapping = bd.assign_local_speakers(locals_, embeddings, labels)
                        found = bd.reconstruct(
                            segmentation, mapping, int(labels.max()) + 1, audio.duration
                        )
                        turns = without_minor_speakers(canonical_turns(found), MIN_SPEAKER_S)
                    key = f"{threshold} {count}"
                    metric = metrics.setdefault(group, {}).setdefault(
                        key, DiarizationErrorRate(collar=0.5, skip_overlap=False)
                    )
                    der = metric(reference, annotation_of(turns, conversation.name), uem=uem)
                    row.append(f"{key}={der:.3f}")
            print(*row, flush=True)
    for group, by_key in metrics.items():
        print(group, {key: round(abs(metric), 4) for key, metric in by_key.items()})
    print(f"segmentation + embeddings RTF {seconds / audio_seconds:.4f}")


def _tune_side(singlish: Path) -> list[tuple[str, SessionInput]]:
    ami = corpus_conversations(list(AMI_SPLIT["tune"]))
    clean = corpus_conversations(list(CLEAN))
    command = [sys.executable, str(SHARED / "singlish" / "make.py"), "--out", str(singlish)]
    subprocess.run(command, check=True, capture_output=True)
    generated = [
        SessionInput(
            name=wav.stem,
            chunks=(wav,),
            duration_s=0.0,
            rttm=wav.with_suffix(".rttm"),
            uem=None,
            speakers=len(rttm_speakers(wav.with_suffix(".rttm"))),
        )
        for wav in sorted(singlish.glob("*.wav"))
    ]
    return [
        *(("ami tune", c) for c in ami),
        *(("clean", c) for c in clean),
        *(("singlish dev", c) for c in generated),
    ]


if __name__ == "__main__":
    main()
