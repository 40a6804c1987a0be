"""DIARIZATION_BACKEND=pyannote executed: pyannote.audio 4 (the ``pyannote`` extra) loading a
local model directory with ``Pipeline.from_pretrained`` and running it on corpus speech, in
both pipeline styles (community-1: VBx + exclusive view + speaker embeddings; 3.1:
agglomerative clustering), through the product's loader, ``hear_speakers`` and the worker.

The models have the production architectures (PyanNet with segmentation-3.0's powerset
specifications, WeSpeaker ResNet34, a PLDA) and random weights built under a temporary
directory (``bench.random_models``): nothing is downloaded or committed. So the tests judge
what the product does with pyannote's answer (hints honoured, progress forward, labels
canonical, voices unit length, the exclusive view used for words), never how right the
random answer is. A larger segmentation step (one 10 s chunk) keeps each run to seconds.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from config import Settings
from services.diarization import (
    DiarizationError,
    PyannoteDiarizer,
    hear_speakers,
    load_diarizer,
)
from services.domain import Audio, SpeakerHints
from tests.factories import Phone, drain_queues
from tests.paths import CORPUS, REPO

pytest.importorskip("pyannote.audio", reason="the `pyannote` extra is not installed")

SAMPLE = CORPUS / "diarization/pyannote_sample/sample.wav"  # two women, 30 s, 16 kHz
SECONDS = 10.0  # one 10 s chunk at the fixture's step of 1.0 (production's 0.1: ten)
TWO_CHUNKS = 20.0  # two chunks: enough local speakers for pyannote to find two


def _speech(path: Path, seconds: float | None = None) -> Audio:
    samples, rate = sf.read(path, dtype="float32")
    assert rate == 16_000
    return Audio(samples if seconds is None else samples[: int(seconds * rate)])


def _settings(model: Path | str, tmp_path: Path, **fields: object) -> Settings:
    return Settings(
        environment="test",
        data_dir=tmp_path,
        device="cpu",
        diarization_backend="pyannote",
        diarization_model=str(model),
        **fields,  # type: ignore[arg-type]
    )


def test_pyannote_community1_hints_progress_exclusive_view_and_voices(
    pyannote_dirs: dict[str, Path], tmp_path: Path
) -> None:
    diarizer = load_diarizer(_settings(pyannote_dirs["community-1"], tmp_path))
    assert isinstance(diarizer, PyannoteDiarizer)
    reports: list[float] = []

    heard = hear_speakers(
        _speech(SAMPLE, TWO_CHUNKS), diarizer, SpeakerHints(num_speakers=2), reports.append
    )

    assert {t.speaker for t in heard.turns} == {"SPEAKER_00", "SPEAKER_01"}  # num_speakers
    assert heard.turns[0].speaker == "SPEAKER_00"
    assert all(0 <= t.start < t.end <= TWO_CHUNKS + 0.1 for t in heard.turns)
    # the exclusive view: same speakers, never two at once
    assert {t.speaker for t in heard.exclusive} <= {"SPEAKER_00", "SPEAKER_01"}
    assert all(a.end <= b.start + 1e-6 for a, b in itertools.pairwise(heard.exclusive))
    # pyannote's hook drove the progress: its steps in between, forward only, then done
    assert reports == sorted(reports) and reports[-1] == 1.0
    assert any(0.0 < r < 0.5 for r in reports) and any(0.5 <= r < 1.0 for r in reports)
    # the speakers' embeddings come out as voices, relabelled like the turns
    assert heard.voices, "pyannote returned no speaker embedding"
    for voice in heard.voices:
        assert voice.speaker in {"SPEAKER_00", "SPEAKER_01"}
        assert len(voice.embedding) == 256
        assert abs(np.linalg.norm(voice.embedding) - 1.0) < 1e-6
        assert voice.embedder.startswith(f"{pyannote_dirs['community-1']}/embedding@pyannote")
        assert 0.0 < voice.seconds <= TWO_CHUNKS


def test_pyannote_31_style_with_min_and_max_speakers(
    pyannote_dirs: dict[str, Path], tmp_path: Path
) -> None:
    diarizer = load_diarizer(_settings(pyannote_dirs["3.1"], tmp_path))
    assert type(diarizer.pipeline.clustering).__name__ == "AgglomerativeClustering"  # type: ignore[attr-defined]

    heard = hear_speakers(
        _speech(SAMPLE, SECONDS), diarizer, SpeakerHints(min_speakers=1, max_speakers=1)
    )

    assert {t.speaker for t in heard.turns} == {"SPEAKER_00"}  # max_speakers reached pyannote
    assert sum(t.duration for t in heard.turns) >= 1.0


def test_pyannote_community1_through_the_worker(
    pyannote_dirs: dict[str, Path],
    client,
    make_user,
    settings,
    redis_conn,
    models,
    tmp_path: Path,
) -> None:
    """A session recorded through the API and processed by a real RQ worker whose diarizer
    is what ``DIARIZATION_BACKEND=pyannote`` loads (the other stages: the offline models)."""
    chunk = tmp_path / "chunk.wav"
    sf.write(chunk, _speech(SAMPLE, SECONDS).samples, 16_000)
    pyannote = load_diarizer(_settings(pyannote_dirs["community-1"], tmp_path))
    engines = replace(models, diarizer=pyannote)
    user = make_user()
    session_id = Phone(client, user.headers).record([chunk], min_speakers=1, max_speakers=2)

    drain_queues(settings, redis_conn, engines)

    status = client.get(f"/sessions/{session_id}/status", headers=user.headers).json()
    assert status["status"] == "ready_for_claiming", status
    speakers = client.get(f"/sessions/{session_id}/speakers", headers=user.headers).json()
    labels = [s["speaker_label"] for s in speakers["speakers"]]
    assert 1 <= len(labels) <= 2 and labels == sorted(labels)
    transcript = client.get(f"/sessions/{session_id}/transcript", headers=user.headers).json()
    assert transcript["segments"], "no words were heard"
    assert {s["speaker_label"] for s in transcript["segments"]} <= set(labels)


def test_pyannote_loader_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DiarizationError, match="local clone"):
        load_diarizer(_settings(tmp_path / "no-such-model", tmp_path))
    # a hub id with the hub out of reach (HF_HUB_OFFLINE=1 in the tests) fails, and fast
    with pytest.raises(DiarizationError, match="speaker-diarization-community-1"):
        load_diarizer(_settings("pyannote/speaker-diarization-community-1", tmp_path))


def test_pyannote_telemetry_is_off_unless_asked(
    pyannote_dirs: dict[str, Path], tmp_path: Path
) -> None:
    from pyannote.audio.telemetry.metrics import is_metrics_enabled

    load_diarizer(_settings(pyannote_dirs["3.1"], tmp_path))
    assert not is_metrics_enabled()
    try:
        load_diarizer(_settings(pyannote_dirs["3.1"], tmp_path, pyannote_telemetry=True))
        assert is_metrics_enabled()
    finally:
        os.environ["PYANNOTE_METRICS_ENABLED"] = "false"


def test_pyannote_extra_imports_torchaudio_on_this_torch() -> None:
    """scripts/install.sh set aside torchaudio's compiled extension if it cannot load here;
    in a fresh interpreter torchaudio and pyannote import, and the fbank pyannote's embedding
    model computes is torchaudio's pure-Python one."""
    code = (
        "import torchaudio, torch; import pyannote.audio;"
        "import torchaudio.compliance.kaldi as k;"
        "print(k.fbank(torch.randn(1, 16000), num_mel_bins=80).shape)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "torch.Size([98, 80])" in done.stdout
