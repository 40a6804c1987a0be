"""The benchmark harness on tiny inputs, so that it cannot rot: each subcommand runs end to
end against the real stack (Postgres, Redis, uvicorn, a worker, the real models) and writes
the JSON the docs quote. No speed thresholds: machines are noisy; only shapes and sanity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import bench
from bench.loadgen import parse_wrk
from bench.quality import normalise
from tests.paths import PG_ADMIN, REDIS_TEST_URL

STACK = ["--pg-admin", PG_ADMIN, "--redis-url", REDIS_TEST_URL]


def _run(tmp_path: Path, *argv: str) -> dict[str, Any]:
    assert bench.main(["--out", str(tmp_path), *argv]) == 0
    (written,) = tmp_path.glob(f"{argv[0]}-*.json")
    payload = json.loads(written.read_text())
    assert payload["command"] == argv[0]
    assert payload["machine"]["nproc"] >= 1
    assert len(payload["machine"]["load_average"]) == 3
    return payload["results"]


@pytest.mark.slow
def test_pipeline_against_baseline_on_one_short_conversation(tmp_path):
    result = _run(tmp_path, "pipeline", "--only", "an4", "--no-warmup", "--minutes")
    (corpus,) = result["sets"]
    assert corpus["set"] == "corpus" and corpus["audio_s"] == pytest.approx(5.2, abs=0.1)
    assert set(corpus["stages_s"]) == {
        "concatenate",
        "diarize",
        "transcribe",
        "analyse",
        "voices",
        "clips",
    }
    assert all(seconds >= 0 for seconds in corpus["stages_s"].values())
    assert corpus["pipeline_s"] == pytest.approx(sum(corpus["stages_s"].values()), abs=0.01)
    assert corpus["baseline_s"] > 0 and corpus["ratio"] > 0 and corpus["pipeline_rtf"] > 0
    assert corpus["load_s"] > 0
    # the worker holds more than the bare interpreter, and its peak is at least its resting size
    assert corpus["peak_rss_mib"] >= corpus["rss_after_load_mib"] > 50
    assert corpus["per_session"][0]["speakers_found"] >= 1
    assert result["growth"] is None  # one set only


@pytest.mark.slow
def test_pipeline_gpu_stack_dry_run_on_the_cpu(tmp_path):
    """``pipeline --gpu`` as it runs on a CUDA machine, with ``--device cpu``: the product's
    loaders on the production models, random weights where those cannot be had (offline
    here), a tiny Whisper and segmentation step 1.0 to keep it short."""
    pytest.importorskip("pyannote.audio", reason="the `pyannote` extra is not installed")
    from bench.random_models import build_text_emotion

    emotion = build_text_emotion(tmp_path / "emotion")
    result = _run(
        tmp_path / "out",
        *("pipeline", "--gpu", "--device", "cpu", "--whisper", "tiny", "--no-warmup"),
        *("--emotion-model", str(emotion), "--segmentation-step", "1.0"),
        *("--only", "an4", "--minutes"),
    )
    (corpus,) = result["sets"]
    assert result["gpu"]["diarization_model"] == "pyannote/speaker-diarization-community-1"
    assert corpus["pipeline_s"] > 0 and corpus["baseline_s"] > 0
    notes = " ".join(corpus["pipeline"]["notes"])
    assert "random-weight model of the community-1 architecture" in notes  # offline here
    assert "random-weight transformers Whisper tiny" in notes
    assert "text emotion" not in notes  # the local model loaded


@pytest.mark.slow
def test_queue_latency_through_the_api_and_a_real_worker(tmp_path):
    result = _run(tmp_path, "queue-latency", "--sessions", "1", *STACK)
    (sample,) = result["samples"]
    assert sample["wait_s"] >= 0 and sample["run_s"] > 0
    assert 0 < result["end_to_started_s"]["p50"] < 60
    assert result["end_to_stage_change_s"]["max"] >= result["end_to_started_s"]["max"] - 1


@pytest.mark.slow
def test_live_session_through_the_api_at_keep_up_pace(tmp_path):
    """A 1-minute session (two 30 s m4a chunks) uploaded at keep-up pace to a real stack on
    whichever path the worker takes by default, then faster-whisper alone on the same chunks."""
    result = _run(tmp_path, "live", "--minutes", "1", "--no-warmup", *STACK)
    (run,) = result["runs"]
    assert run["chunks"] == 2 and run["audio_s"] == 60
    assert run["final_status"] in ("ready_for_claiming", "completed")
    assert 0 < run["end_to_ready_s"] < 300 and run["keep_up_cap_hits"] == 0
    if run["chunk_fields"]:  # the live path: the status counted the chunks while recording
        assert run["chunks_uploaded_reported"] == 2 and 0 <= run["chunks_heard_at_end"] <= 2
    assert run["worker_peak_rss_mib"] >= run["worker_peak_before_session_mib"] > 50
    assert run["worker_cpu_s"] > 0 and run["worker_cpu_s_per_audio_h"] > 0
    spent = run["worker_cpu_by_job_s"]  # the worker's own count: the jobs inside its total
    in_jobs = sum(v for k, v in spent.items() if not k.startswith("stage:"))
    assert spent["processor.process_session"] > 0 and in_jobs <= run["worker_cpu_s"] + 0.5
    assert sum(v for k, v in spent.items() if k.startswith("stage:")) <= in_jobs + 0.5
    assert run["baseline"]["cpu_s"] > 0 and run["cpu_ratio"] > 0
    reprocess = run["reprocess"]
    if reprocess["available"]:
        assert reprocess["to_ready_s"] > 0 and reprocess["transcript_words"] > 0
        assert reprocess["transcript_unchanged"] == (reprocess["transcript_words_changed"] == 0)
    else:  # the route has not landed
        assert reprocess["http_status"] in (404, 405)


def test_a_gpu_machine_without_ffmpeg_or_ctranslate2_still_gets_its_sessions_and_baseline(
    tmp_path, monkeypatch
):
    """A GPU machine with no ffmpeg binary and no CTranslate2 for its CUDA (seen on the H200):
    a session built before travels and is used without ffmpeg (one never built is refused
    with the reason), and the baseline decodes its chunks with the product's PyAV decode,
    to the same samples as faster-whisper's reader."""
    import shutil
    import sys

    import numpy as np

    import bench.inputs as inputs
    from bench.probe import _baseline_decoder
    from bench.report import BenchError

    built = inputs.built_session(0.5, "ogg", cache_dir=tmp_path)
    assert len(built.chunks) == 1
    monkeypatch.setattr(shutil, "which", lambda name: None)
    again = inputs.built_session(0.5, "ogg", cache_dir=tmp_path)
    assert again.chunks == built.chunks
    with pytest.raises(BenchError, match="needs ffmpeg"):
        inputs.built_session(1, "ogg", cache_dir=tmp_path)

    with_fw = _baseline_decoder()(built.chunks[0])
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # import fails, as there
    without_fw = _baseline_decoder()(built.chunks[0])
    assert len(without_fw) == len(with_fw) > 0
    assert np.abs(without_fw - with_fw).max() < 1e-3


def test_live_transcript_text_is_compared_in_time_order():
    from bench.live import transcript_text, words_changed

    segments = [
        {"start": 2.0, "end": 3.0, "text": "can or not"},
        {"start": 0.0, "end": 1.5, "text": " we go  makan "},
    ]
    assert transcript_text(segments) == "we go makan can or not"
    # a reprocess may re-cut segments at new speaker turns: the words are what must hold
    recut = [
        {"start": 0.0, "end": 1.0, "text": "we go"},
        {"start": 1.0, "end": 3.0, "text": "makan can or not"},
    ]
    assert transcript_text(recut) == transcript_text(segments)
    assert words_changed("we go makan can or not", "we go eat can not") == 2


def test_api_load_with_our_own_generator(tmp_path):
    result = _run(
        tmp_path,
        "api",
        "--generator",
        "python",
        "--api-workers",
        "1",
        "--duration",
        "5",
        "--max-requests",
        "12",
        "--status-connections",
        "3",
        "--upload-connections",
        "3",
        *STACK,
    )
    assert set(result["tests"]) == {"live", "status", "upload"}
    for test in result["tests"].values():
        assert test["requests"] == 12 and test["errors"] == 0
        assert test["requests_per_s"] > 0
        assert 0 < test["p50_ms"] <= test["p99_ms"]


@pytest.mark.slow
def test_quality_on_a_few_files(tmp_path):
    result = _run(
        tmp_path, "quality", "--parts", "der", "wer", "emotion", "--limit", "2", "--groups", "clean"
    )
    assert list(result["der"]["groups"]) == ["clean"]
    for count in ("oracle", "auto"):
        for value in result["der"]["total"][count].values():
            assert 0 <= value < 2
    assert len(result["der"]["files"]) == 2
    assert 0 <= result["wer"]["total"]["wer"] < 1.5
    assert result["wer"]["total"]["ref_words"] > 0
    assert result["emotion"]["rows"] == 2
    assert 0 <= result["emotion"]["accuracy"] <= 1


@pytest.mark.slow
def test_der_reports_each_group_apart_with_its_baseline_and_rtf(tmp_path):
    result = _run(tmp_path, "quality", "--parts", "der", "--limit", "1")
    groups = result["der"]["groups"]
    assert list(groups) == ["clean", "far-field tuned-on", "far-field never-tuned"]
    assert [f["group"] for f in result["der"]["files"]] == list(groups)
    for summary in groups.values():
        assert summary["files"] == 1 and summary["audio_s"] > 0 and summary["rtf"] > 0
        (source,) = summary["sources"].values()
        assert source["total"] == summary["total"]
        for count in ("oracle", "auto", "one speaker"):
            assert 0 <= summary["total"][count]["DER collar ±0.25 s"] < 2
    # the baseline labels perfect speech regions with one speaker: no miss, no false alarm,
    # so on a two-speaker conversation its error is the second speaker's share of the speech
    (clean,) = (f for f in result["der"]["files"] if f["group"] == "clean")
    assert clean["speakers"] == 2 and 0.2 < clean["one speaker_DER collar none"] < 0.8


def test_wrk_output_is_parsed_in_milliseconds():
    output = """Running 5s test @ http://127.0.0.1:8000/health/live
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.50ms    3.00ms  80.00ms   90.00%
  Latency Distribution
     50%  950.00us
     75%   12.00ms
     90%   20.00ms
     99%    1.20s
  1000 requests in 5.00s, 150.00KB read
  Non-2xx or 3xx responses: 10
Requests/sec:    200.00
"""
    parsed = parse_wrk(output)
    assert parsed["p50_ms"] == 0.95 and parsed["p90_ms"] == 20.0 and parsed["p99_ms"] == 1200.0
    assert parsed["requests"] == 1000 and parsed["errors"] == 10 and parsed["ok"] == 990
    assert parsed["requests_per_s"] == 198.0 and parsed["mean_ms"] == 12.5


def test_wer_normalisation_spells_numbers_and_drops_punctuation():
    assert normalise("The 10 of Clubs, isn't it?") == "the ten of clubs isn't it"
    assert normalise("21 - 305") == "twenty one three hundred five"
