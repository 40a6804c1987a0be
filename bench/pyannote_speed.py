"""``python -m bench pyannote``: what DIARIZATION_BACKEND=pyannote costs on this machine.

A community-1-shaped pipeline with random weights (``bench.random_models``: the real
architectures and sizes; no weights can be downloaded here) is loaded by the product's
loader and applied by ``services.diarization.hear_speakers`` to built sessions of corpus
speech (``bench.inputs.built_session``), one per ``--minutes``. Reports wall seconds and RTF
per session. pyannote runs every network on every window whatever the weights, so the
segmentation and embedding times are those of the real model; clustering time depends on
the embeddings (random ones cluster differently), a small share.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.inputs import built_session
from bench.report import BenchError, console, load_average

CALIBRATION_NAME = "diarization/nemo_an4_diarize_test/an4_diarize_test.wav"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument(
        "--segmentation-step",
        type=float,
        default=0.1,
        help="fraction of the 10 s window between two windows (community-1's: 0.1)",
    )
    parser.add_argument("--style", default="community-1", choices=["community-1", "3.1"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    try:
        import pyannote.audio  # noqa: F401
    except (ImportError, OSError) as exc:
        raise BenchError(f"needs the `pyannote` extra ({exc})") from exc
    import numpy as np
    import soundfile

    from bench.random_models import build_pyannote_pipeline
    from bench.report import CORPUS
    from config import Settings
    from services.audio import decode_audio
    from services.diarization import hear_speakers, load_diarizer
    from services.domain import Audio

    calibration, _ = soundfile.read(CORPUS / CALIBRATION_NAME, dtype="float32")
    sessions = []
    with tempfile.TemporaryDirectory(prefix="lahstats-pyannote-") as tmp:
        model = build_pyannote_pipeline(
            Path(tmp) / args.style, calibration, args.style, args.segmentation_step
        )
        settings = Settings(
            device="cpu",
            data_dir=Path(tmp) / "data",
            diarization_backend="pyannote",
            diarization_model=str(model),
        )
        started = time.perf_counter()
        diarizer = load_diarizer(settings)
        load_s = time.perf_counter() - started
        hear_speakers(Audio(calibration[:80_000]), diarizer)  # first-call costs, untimed
        for minutes in args.minutes:
            session = built_session(minutes, "wav")
            audio = Audio(np.concatenate([decode_audio(c).samples for c in session.chunks]))
            started = time.perf_counter()
            heard = hear_speakers(audio, diarizer)
            seconds = time.perf_counter() - started
            sessions.append(
                {
                    "minutes": minutes,
                    "audio_s": round(audio.duration, 1),
                    "seconds": round(seconds, 2),
                    "rtf": round(seconds / audio.duration, 4),
                    "speakers": len({t.speaker for t in heard.turns}),
                    "voices": len(heard.voices),
                }
            )
            console.print(f"{minutes} min: {seconds:.1f} s, load {load_average()}")
    return {
        "style": args.style,
        "segmentation_step": args.segmentation_step,
        "load_s": round(load_s, 2),
        "sessions": sessions,
        "load_average_after": load_average(),
    }


def render(result: dict[str, Any]) -> None:
    console.print(
        f"pyannote {result['style']} (random weights), step {result['segmentation_step']}, "
        f"CPU; load {result['load_s']} s"
    )
    for s in result["sessions"]:
        console.print(
            f"  {s['minutes']} min ({s['audio_s']} s): {s['seconds']} s, RTF {s['rtf']}, "
            f"{s['speakers']} speakers, {s['voices']} voices"
        )
