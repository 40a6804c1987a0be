"""Known voices: a diarized speaker who is two members of the group is split by their
voiceprints, with the real CAM++ on real speech (../shared/corpus, the two speakers of the
SpeechBrain samples); anyone else is left as the diarizer heard them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from config import Settings
from services.diarization import Diarization, FoundSpeakers
from services.domain import Audio, SpeakerHints, SpeakerTurn
from services.known_voices import KnownVoices, recut, separate_known_voices
from services.voiceprints import embed_speakers, load_voice_embedder
from tests.paths import CORPUS

FOLDER = CORPUS / "asr_en" / "speechbrain_harvard"
PAUSE = np.zeros(4800, dtype=np.float32)  # 0.3 s


@pytest.fixture(scope="module")
def embedder():
    return load_voice_embedder(Settings(device="cpu"))


def _read(name: str) -> np.ndarray:
    samples, rate = sf.read(FOLDER / name, dtype="float32")
    assert rate == 16000
    return samples


def _conversation(names: list[str]) -> tuple[Audio, list[SpeakerTurn]]:
    """The utterances one after another; the reference turns (speaker = spk1 / spk2)."""
    pieces, turns, at = [], [], 0.0
    for name in names:
        samples = _read(name)
        turns.append(SpeakerTurn(at, at + len(samples) / 16000, name.split("_")[0]))
        pieces += [samples, PAUSE]
        at += (len(samples) + len(PAUSE)) / 16000
    return Audio(np.concatenate(pieces)), turns


@pytest.fixture(scope="module")
def voiceprints(embedder):
    """Each speaker's voiceprint from utterances the sessions below never replay."""
    prints = {}
    for person in ("spk1", "spk2"):
        audio, turns = _conversation([f"{person}_snt{i}.wav" for i in (1, 2, 3)])
        (voice,) = embed_speakers(audio, turns, embedder)
        prints[person] = voice.embedding
    return prints


def _merged(turns: list[SpeakerTurn]) -> Diarization:
    """A diarizer that heard everyone as one speaker."""
    one = tuple(SpeakerTurn(t.start, t.end, "SPEAKER_00") for t in turns)
    return Diarization(one, one)


def _owner_share(diarization: Diarization, reference: SpeakerTurn) -> dict[str, float]:
    shares: dict[str, float] = {}
    for t in diarization.turns:
        shared = min(t.end, reference.end) - max(t.start, reference.start)
        if shared > 0:
            shares[t.speaker] = shares.get(t.speaker, 0.0) + shared / reference.duration
    return shares


# a minute of the two taking turns (their three unused sentences each, said three times)
TAKING_TURNS = [f"{p}_snt{i}.wav" for _ in range(3) for i in (4, 5, 6) for p in ("spk1", "spk2")]


def test_two_members_heard_as_one_speaker_are_told_apart(embedder, voiceprints):
    audio, reference = _conversation(TAKING_TURNS)
    known = KnownVoices(voiceprints, min_score=0.65, min_margin=0.05)
    split = separate_known_voices(audio, _merged(reference), embedder, known)

    assert {t.speaker for t in split.turns} == {"SPEAKER_00", "SPEAKER_01"}
    assert split.exclusive == split.turns  # the backend had no exclusive view of its own
    owners: dict[str, set[str]] = {}
    for ref in reference:
        label, share = max(_owner_share(split, ref).items(), key=lambda kv: kv[1])
        assert share >= 0.8, (ref, _owner_share(split, ref))
        owners.setdefault(ref.speaker, set()).add(label)
    # each person is one speaker, and not the other's
    assert all(len(labels) == 1 for labels in owners.values())
    assert owners["spk1"] != owners["spk2"]
    # nothing is lost: the split turns cover exactly the merged speaker's seconds
    assert sum(t.duration for t in split.turns) == pytest.approx(
        sum(t.duration for t in reference), abs=0.01
    )


def test_one_member_or_one_voiceprint_leaves_the_speaker_alone(embedder, voiceprints):
    audio, reference = _conversation([n for n in TAKING_TURNS if n.startswith("spk1")])
    both = KnownVoices(voiceprints, min_score=0.65, min_margin=0.05)
    merged = _merged(reference)
    assert separate_known_voices(audio, merged, embedder, both) == merged

    audio, reference = _conversation(TAKING_TURNS)
    only_one = KnownVoices({"spk1": voiceprints["spk1"]}, min_score=0.65, min_margin=0.05)
    merged = _merged(reference)
    assert separate_known_voices(audio, merged, embedder, only_one) == merged
    # a threshold no window reaches: nobody is sure, nothing is split
    unsure = KnownVoices(voiceprints, min_score=0.999, min_margin=0.05)
    assert separate_known_voices(audio, merged, embedder, unsure) == merged


def test_recut_gives_every_moment_of_a_turn_to_the_nearest_part():
    turns = [
        SpeakerTurn(0.0, 4.0, "A"),
        SpeakerTurn(3.0, 5.0, "B"),  # overlaps A's end: A's 3-4 s are not embedded
        SpeakerTurn(6.0, 7.0, "A"),  # too short to embed: goes to the nearest part
    ]
    parts = {"A": [(0.0, 1.5, 0), (1.5, 2.5, 1), (2.5, 3.0, 1)]}
    out = recut(turns, parts)
    assert out == (
        SpeakerTurn(0.0, 1.5, "A~0"),
        SpeakerTurn(1.5, 4.0, "A~1"),
        SpeakerTurn(3.0, 5.0, "B"),
        SpeakerTurn(6.0, 7.0, "A~1"),
    )


class _OneSpeaker:
    """The real diarizer, its speakers then heard as one (the merge this step undoes)."""

    def __init__(self, diarizer):
        self.inner = diarizer
        self.max_speakers_default = diarizer.max_speakers_default
        self.hears_far_field = diarizer.hears_far_field

    def find_turns(self, audio, speakers, on_progress):
        found = self.inner.find_turns(audio, speakers, on_progress)
        turns = found.turns if isinstance(found, FoundSpeakers) else found
        return [SpeakerTurn(t.start, t.end, "one") for t in turns]


def test_the_job_splits_with_the_group_voiceprints_unless_told_the_count(models, voiceprints):
    """``process_audio`` (both paths' stages) applies it after diarization, before words are
    given to speakers; a speaker count from the session's people wins."""
    from processing.progress import Unwatched
    from processor import process_audio

    audio, _ = _conversation(TAKING_TURNS)
    engines = replace(models, diarizer=_OneSpeaker(models.diarizer))
    known = KnownVoices(voiceprints, min_score=0.65, min_margin=0.05)

    heard = process_audio(audio, SpeakerHints(), engines, Unwatched(), known)
    assert {t.speaker for t in heard.turns} == {"SPEAKER_00", "SPEAKER_01"}
    talkers = {s.speaker for s in heard.analysis.segments}
    assert talkers == {"SPEAKER_00", "SPEAKER_01"}  # words went to both

    told = process_audio(audio, SpeakerHints(max_speakers=1), engines, Unwatched(), known)
    assert {t.speaker for t in told.turns} == {"SPEAKER_00"}
