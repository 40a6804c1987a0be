"""The far-field DER material (``bench/farfield.py``, ``bench/rooms.py``): the synthetic
rooms are deterministic, their references describe the rendered audio, the room really
reverberates, the tune/report splits share nothing, and the AMI held-out references match
their audio. Real corpus speech and real image-method rooms throughout."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from bench import farfield, rooms
from bench.inputs import rttm_speakers
from tests.paths import CORPUS

FRAME = 320  # 20 ms at 16 kHz


@pytest.fixture(scope="module")
def report_voices() -> list[farfield.Voice]:
    return farfield.load_voices("report")


@pytest.fixture(scope="module")
def conversation(report_voices: list[farfield.Voice]) -> farfield.Conversation:
    return farfield.build_conversation("report", 3, report_voices)  # 4 talkers


def _frame_db(samples: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    n = len(samples) // FRAME
    power = np.mean(np.asarray(samples[: n * FRAME], dtype=np.float64).reshape(n, FRAME) ** 2, 1)
    return np.asarray(10 * np.log10(power + 1e-12))


def _inside(spans: list[tuple[float, float]], frames: int) -> npt.NDArray[np.bool_]:
    mask = np.zeros(frames, dtype=bool)
    for start, end in spans:
        mask[int(start * 50) : int(np.ceil(end * 50))] = True
    return mask


def test_the_same_seed_builds_the_same_conversation(report_voices, conversation):
    again = farfield.build_conversation("report", 3, report_voices)
    assert np.array_equal(again.rendered.mixture, conversation.rendered.mixture)
    assert again.reference() == conversation.reference()
    assert again.room == conversation.room
    other = farfield.build_conversation("report", 4, report_voices)
    assert other.room != conversation.room


def test_the_reference_says_where_the_speech_is(conversation):
    reference = conversation.reference()
    speakers = {who for who, _, _ in reference}
    assert 2 <= len(speakers) <= 4
    assert 30 <= conversation.duration_s <= 90
    assert reference[-1][2] <= conversation.duration_s
    rendered = conversation.rendered
    inside = _inside([(s, e) for _, s, e in reference], len(rendered.mixture) // FRAME)
    # the dry talkers hold (almost) all their energy inside the reference turns...
    dry = 10 ** (_frame_db(rendered.speech_dry) / 10)
    assert dry[inside].sum() / dry.sum() > 0.99
    # ...and in the recording, room and noise included, the turns are clearly louder
    mixture = _frame_db(rendered.mixture)
    assert np.median(mixture[inside]) - np.median(mixture[~inside]) > 3
    # every speaker is heard, and no speaker overlaps themselves
    for who in speakers:
        spans = sorted((s, e) for w, s, e in reference if w == who)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
        assert np.median(mixture[_inside(spans, len(mixture))]) > np.median(mixture[~inside])
    overlap = farfield.describe(conversation)["overlap_s"]
    assert isinstance(overlap, float) and overlap > 0


def test_the_room_reverberates_and_the_noise_is_at_the_drawn_snr(conversation):
    rendered, room = conversation.rendered, conversation.room
    assert 0.3 <= room.rt60_s <= 0.9
    assert abs(rendered.rt60_measured_s - room.rt60_s) < 0.35 * room.rt60_s
    assert all(0.5 <= d <= 2.05 for d in room.talker_distances())
    # direct-to-reverberant ratio of a talker's response: a room, not an anechoic box
    rir = rendered.rirs[0].astype(np.float64)
    peak = int(np.argmax(np.abs(rir)))
    direct = np.sum(rir[max(peak - 40, 0) : peak + 40] ** 2)
    assert 10 * np.log10(direct / (np.sum(rir**2) - direct)) < 6
    # the reverberant tails fill the pauses: the energy outside the reference turns,
    # relative to inside, is far above the dry speech's
    dry, wet = (10 ** (_frame_db(x) / 10) for x in (rendered.speech_dry, rendered.speech_wet))
    inside = _inside([(s, e) for _, s, e in conversation.reference()], len(dry))

    def outside_share(power: npt.NDArray[np.float64]) -> float:
        return float(10 * np.log10(power[~inside].mean() / power[inside].mean()))

    assert outside_share(wet) > outside_share(dry) + 10
    # the noise sits at the drawn SNR against the speech (within the active-speech estimate)
    speech_db = 10 * np.log10(rooms._active_power(rendered.speech_wet))
    noise_db = 10 * np.log10(np.mean(rendered.noise.astype(np.float64) ** 2))
    assert abs((speech_db - noise_db) - room.snr_db) < 1.0


def test_clatter_is_transient():
    track = rooms.clatter_track(np.random.default_rng(0), 10 * rooms.SAMPLE_RATE, per_second=1)
    db = _frame_db(track)
    assert (db > -30).mean() < 0.5  # mostly quiet between hits
    assert db.max() > -15


def test_the_splits_share_no_recording_speaker_or_seed():
    files = {
        split: {f for v in farfield.VOICES[split] for f in v.files} for split in farfield.SPLITS
    }
    assert all(files.values()) and not files["tune"] & files["report"]
    assert all(f.exists() for fs in files.values() for f in fs)
    families = {s: {v.family for v in farfield.VOICES[s]} for s in farfield.SPLITS}
    assert not families["tune"] & families["report"]
    tune, report = (set(farfield.AMI_SPLIT[s]) for s in farfield.SPLITS)
    assert not tune & report
    corpus_ami = CORPUS / "diarization" / farfield.AMI_CORPUS
    assert tune | report == {p.stem.removesuffix("_16k") for p in corpus_ami.glob("*.wav")}
    heldout = {s.name for s in farfield.ami_heldout()}
    assert len(heldout) == 7 and not heldout & (tune | report)
    tuned_speakers = {w for n in tune for w in rttm_speakers(corpus_ami / f"{n}.rttm")}
    for session in farfield.ami_heldout():
        assert session.rttm is not None and not rttm_speakers(session.rttm) & tuned_speakers
    seeds = {
        s: range(farfield.SEEDS[s], farfield.SEEDS[s] + farfield.CONVERSATIONS)
        for s in ("tune", "report")
    }
    assert not set(seeds["tune"]) & set(seeds["report"])


@pytest.mark.parametrize("session", farfield.ami_heldout(), ids=lambda s: s.name)
def test_ami_heldout_references_match_their_audio(session):
    samples, rate = soundfile.read(session.chunks[0], dtype="float32")
    assert rate == 16_000 and samples.ndim == 1
    assert abs(len(samples) - 30 * rate) <= 1  # 30.00006 s upstream
    assert session.rttm is not None and session.uem is not None
    assert session.uem.read_text().split() == [session.name, "1", "0.000", "30.000"]
    spans = [
        (float(f[3]), float(f[3]) + float(f[4]))
        for f in (line.split() for line in session.rttm.read_text().splitlines())
    ]
    assert spans and all(0 <= s < e <= 30.0 for s, e in spans)
    db = _frame_db(samples)
    inside = _inside(spans, len(db))
    if (~inside).sum() > 50:  # trn09 and tst00 are speech from end to end
        assert np.median(db[inside]) - np.median(db[~inside]) > 10


def test_der_groups_tag_each_conversation_and_build_only_what_is_asked(tmp_path: Path):
    groups = farfield.der_groups(["never-tuned"], limit=10, cache_dir=tmp_path)
    (sessions,) = groups.values()
    assert list(groups) == ["far-field never-tuned"]
    sources = [s.tags["source"] for s in sessions]
    assert sources == ["AMI corpus dev00-01"] * 2 + ["AMI held-out"] * 7 + ["synthetic rooms"]
    (built,) = tmp_path.glob("farfield/*/report/*.wav")
    assert built == sessions[-1].chunks[0]
    assert sessions[-1].rttm is not None and sessions[-1].speakers == len(
        rttm_speakers(sessions[-1].rttm)
    )
    clean = farfield.der_groups(["clean"], cache_dir=tmp_path)["clean"]
    assert {s.name for s in clean} == {
        "an4_diarize_test",
        "leopard_diarization_test",
        "sample",
    }
