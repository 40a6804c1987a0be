"""``python -m bench pipeline``: per-stage seconds, real-time factor, model load time and
peak resident memory of the worker, against faster-whisper alone on the same audio.

Each set of sessions (the corpus conversations; each built N-minute session) is processed
by a fresh ``bench.probe`` subprocess in ``pipeline`` mode and then by another in
``baseline`` mode, back to back, so both see the same machine state.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.inputs import SessionInput, built_session, corpus_conversations
from bench.report import REPO, BenchError, console, load_average, table
from config import Settings

RATIO_GOAL = 1.25
PROBE_TIMEOUT_S = 3 * 3600


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--minutes",
        type=float,
        nargs="*",
        default=[5.0, 60.0],
        help="lengths of the built sessions, in minutes (default: 5 60; none: skip)",
    )
    parser.add_argument(
        "--no-corpus", action="store_true", help="skip the corpus conversations set"
    )
    parser.add_argument(
        "--only", nargs="+", help="corpus conversations whose name contains one of these"
    )
    parser.add_argument("--chunk-format", default="m4a", choices=["m4a", "ogg", "wav"])
    parser.add_argument(
        "--asr-model", help="ASR_MODEL for both sides (default: the embedded default, bundled:base)"
    )
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the untimed first pass over a few seconds of audio (one-off first-call "
        "costs then land in the first session's stages)",
    )
    parser.add_argument("--gpu", action="store_true", help="the production stack on CUDA")
    parser.add_argument(
        "--diarization-model",
        default="pyannote/speaker-diarization-community-1",
        help="--gpu: pyannote pipeline (hub id or local clone); random weights if unavailable",
    )
    parser.add_argument(
        "--whisper",
        default="large-v3-turbo",
        help="--gpu: faster-whisper model name or CTranslate2 directory; random-weight "
        "Whisper of that size if unavailable",
    )
    parser.add_argument(
        "--emotion-model",
        default="j-hartmann/emotion-english-distilroberta-base",
        help="--gpu: transformers text emotion model; random-weight RoBERTa if unavailable",
    )
    parser.add_argument(
        "--speech-emotion-model",
        help="--gpu: SPEECH_EMOTION_MODEL (hub id or local path) to time as well",
    )
    parser.add_argument(
        "--device",
        default="cuda",
        choices=["cuda", "cpu"],
        help="--gpu: cpu runs the same code without CUDA (a dry run, for tests)",
    )
    parser.add_argument(
        "--segmentation-step",
        type=float,
        default=0.1,
        help="--gpu: the random community-1's segmentation step (community-1's own: 0.1)",
    )


def _asr_label(asr_model: str | None) -> str:
    """The ASR the probes run, with the Singlish options the environment turns on."""
    current = Settings()
    options = [
        name
        for name, on in (
            ("hotwords", current.singlish_hotwords),
            ("verify", current.singlish_verify),
        )
        if on
    ]
    return " + ".join([asr_model or "bundled:base", *options])


def run(args: argparse.Namespace) -> dict[str, Any]:
    gpu_spec = _gpu_spec(args) if args.gpu else None  # before building anything
    sets = _input_sets(args)
    if not sets:
        raise BenchError("nothing to run: give --minutes or leave the corpus set on")
    settings = {"asr_model": args.asr_model} if args.asr_model else {}
    results = []
    for name, sessions in sets:
        console.print(f"[bold]{name}[/bold]: {len(sessions)} session(s), load {load_average()}")
        spec = {
            "settings": settings,
            "gpu": gpu_spec,
            "warmup": not args.no_warmup,
            "sessions": [_spec(s) for s in sessions],
        }
        pipeline = run_probe({**spec, "mode": "pipeline"})
        baseline = run_probe({**spec, "mode": "baseline"})
        results.append(_compare(name, pipeline, baseline))
    return {
        "asr_model": _asr_label(args.whisper if args.gpu else args.asr_model),
        "chunk_format": args.chunk_format,
        "gpu": gpu_spec,
        "ratio_goal": RATIO_GOAL,
        "sets": results,
        "growth": _growth(results),
    }


def _input_sets(args: argparse.Namespace) -> list[tuple[str, list[SessionInput]]]:
    sets = []
    if not args.no_corpus:
        sets.append(("corpus", corpus_conversations(args.only)))
    for minutes in args.minutes or []:
        session = built_session(minutes, args.chunk_format)
        sets.append((session.name, [session]))
    return sets


def _spec(session: SessionInput) -> dict[str, Any]:
    return {"name": session.name, "chunks": [str(c) for c in session.chunks]}


def _gpu_spec(args: argparse.Namespace) -> dict[str, Any]:
    import bench.gpu as gpu

    gpu.require_device(args.device)
    return {
        "diarization_model": args.diarization_model,
        "whisper": args.whisper,
        "emotion_model": args.emotion_model,
        "speech_emotion_model": args.speech_emotion_model,
        "device": args.device,
        "segmentation_step": args.segmentation_step,
    }


def run_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``bench.probe`` on ``spec`` in a fresh interpreter and return what it measured."""
    with tempfile.TemporaryDirectory(prefix="lahstats-probe-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        command = [sys.executable, "-m", "bench.probe", str(spec_path), str(out_path)]
        done = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
        if done.returncode != 0:
            raise BenchError(f"bench.probe {spec['mode']} failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(out_path.read_text())
        return result


def _compare(name: str, pipeline: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    audio = sum(s["audio_s"] for s in pipeline["sessions"])
    pipe_s = sum(s["total_s"] for s in pipeline["sessions"])
    base_s = sum(s["total_s"] for s in baseline["sessions"])
    stages: dict[str, float] = {}
    for session in pipeline["sessions"]:
        for stage, seconds in session["stages_s"].items():
            stages[stage] = round(stages.get(stage, 0.0) + seconds, 3)
    base_asr = sum(s["stages_s"]["transcribe"] for s in baseline["sessions"])
    # Whisper's temperature fallback makes one run's ASR time noisy (a 1e-5 difference in
    # the decoded samples can trigger it); this ratio charges the pipeline the baseline's
    # ASR time, so it measures only what the other stages add.
    same_asr = pipe_s - stages["transcribe"] + base_asr
    return {
        "set": name,
        "audio_s": round(audio, 3),
        "pipeline_s": round(pipe_s, 3),
        "baseline_s": round(base_s, 3),
        "ratio": round(pipe_s / base_s, 3) if base_s else None,
        "ratio_same_asr_time": round(same_asr / base_s, 3) if base_s else None,
        "baseline_stages_s": {
            stage: round(sum(s["stages_s"][stage] for s in baseline["sessions"]), 3)
            for stage in baseline["sessions"][0]["stages_s"]
        },
        "pipeline_rtf": round(pipe_s / audio, 4) if audio else None,
        "baseline_rtf": round(base_s / audio, 4) if audio else None,
        "stages_s": stages,
        "load_s": pipeline["load_total_s"],
        "baseline_load_s": baseline["load_total_s"],
        "peak_rss_mib": pipeline["process_peak_rss_mib"],
        "baseline_peak_rss_mib": baseline["process_peak_rss_mib"],
        "rss_after_load_mib": pipeline["rss_after_load_mib"],
        "load_average_after": load_average(),
        "per_session": [
            {
                "name": p["name"],
                "audio_s": p["audio_s"],
                "pipeline_s": p["total_s"],
                "baseline_s": b["total_s"],
                "ratio": round(p["total_s"] / b["total_s"], 3) if b["total_s"] else None,
                "speakers_found": p.get("speakers_found"),
            }
            for p, b in zip(pipeline["sessions"], baseline["sessions"], strict=True)
        ],
        "pipeline": pipeline,
        "baseline": baseline,
    }


def _growth(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """How time and peak memory grow from the shortest built session to the longest
    (time should grow like the audio; memory should stay about flat)."""
    built = sorted((r for r in results if r["set"] != "corpus"), key=lambda r: r["audio_s"])
    if len(built) < 2:
        return None
    short, long = built[0], built[-1]
    return {
        "from": short["set"],
        "to": long["set"],
        "audio_ratio": round(long["audio_s"] / short["audio_s"], 3),
        "time_ratio": round(long["pipeline_s"] / short["pipeline_s"], 3),
        "baseline_time_ratio": round(long["baseline_s"] / short["baseline_s"], 3),
        "rtf": [short["pipeline_rtf"], long["pipeline_rtf"]],
        "peak_rss_mib": [short["peak_rss_mib"], long["peak_rss_mib"]],
        "peak_rss_growth_mib": round(long["peak_rss_mib"] - short["peak_rss_mib"], 1),
        "baseline_peak_rss_mib": [short["baseline_peak_rss_mib"], long["baseline_peak_rss_mib"]],
    }


def render(result: dict[str, Any]) -> None:
    sets = result["sets"]
    stage_names = list(sets[0]["stages_s"])
    device = ", GPU" if result["gpu"] else ""
    console.print(
        table(
            f"Pipeline stages, seconds ({result['asr_model']}, {result['chunk_format']} chunks"
            f"{device})",
            ["set", "audio s", *stage_names, "total s", "RTF", "warm-up s"],
            [
                [
                    r["set"],
                    r["audio_s"],
                    *[r["stages_s"][s] for s in stage_names],
                    r["pipeline_s"],
                    r["pipeline_rtf"],
                    r["pipeline"]["warmup_s"],
                ]
                for r in sets
            ],
        )
    )
    console.print(
        table(
            "Pipeline vs faster-whisper alone (same model, options and audio)",
            [
                "set",
                "pipeline s",
                "baseline s",
                f"ratio (goal ≤ {RATIO_GOAL})",
                "ratio, same ASR time",
                "model load s",
                "baseline load s",
                "peak RSS MiB",
                "baseline peak MiB",
            ],
            [
                [
                    r["set"],
                    r["pipeline_s"],
                    r["baseline_s"],
                    r["ratio"],
                    r["ratio_same_asr_time"],
                    r["load_s"],
                    r["baseline_load_s"],
                    r["peak_rss_mib"],
                    r["baseline_peak_rss_mib"],
                ]
                for r in sets
            ],
        )
    )
    growth = result["growth"]
    if growth:
        console.print(
            table(
                f"Growth from {growth['from']} to {growth['to']} (goal: time linear, memory flat)",
                ["audio x", "pipeline time x", "baseline time x", "RTF", "peak RSS MiB", "Δ MiB"],
                [
                    [
                        growth["audio_ratio"],
                        growth["time_ratio"],
                        growth["baseline_time_ratio"],
                        " → ".join(f"{x:.3g}" for x in growth["rtf"]),
                        " → ".join(f"{x:.0f}" for x in growth["peak_rss_mib"]),
                        growth["peak_rss_growth_mib"],
                    ]
                ],
            )
        )
    for note in (sets[0]["pipeline"].get("notes") or []) if result["gpu"] else []:
        console.print(f"[yellow]note:[/yellow] {note}")
