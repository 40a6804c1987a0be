"""The voiceprint benchmark's own arithmetic (seconds): sessions are built as described, a
wrong suggestion costs precision, the operating point is chosen for precision first, and a
diarized speaker is judged as the reference voice it overlaps most."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.report import BenchError
from bench.voiceprints import (
    COHORTS,
    GROUPS,
    TUNE_ESPEAK,
    TUNE_GROUPS,
    WRONG_KINDS,
    Heard,
    Voice,
    build_session,
    choose,
    choose_slack,
    espeak_groups,
    evaluate,
    truly,
    variant_spoken,
)
from services.domain import SpeakerTurn, SpeakerVoice
from services.voiceprints import FloorRule
from tests.factories import heard_again, voice_vectors


def test_a_session_takes_turns_until_long_enough():
    voices = [Voice(name, espeak=(v, p, s)) for name, v, p, s in TUNE_ESPEAK[:2]]
    voices.append(
        Voice("rec", claim=(np.ones(8000, np.float32),), later=(np.zeros(4000, np.float32),))
    )
    audio, turns = build_session(voices, 0.1, np.random.default_rng(0), phase="later")
    assert audio.duration >= 6
    assert {t.speaker for t in turns} == {"t-us-m3", "t-gb-f2", "rec"}
    recorded = [t for t in turns if t.speaker == "rec"]
    assert all(abs(t.duration - 0.25) < 1e-6 for t in recorded)  # the later half only
    assert all(a.end <= b.start for a, b in itertools.pairwise(turns))


def test_each_claim_session_of_a_recorded_voice_draws_its_own_recordings():
    """Two claim sessions of a recorded member hold different recordings of hers, as two real
    sessions hold different speech (they once replayed the same ones, so her claims agreed at
    1.0 and her per-member floor sat far above any real session's score)."""
    lengths = (4000, 5000, 6000)  # three claim recordings told apart by their length
    voice = Voice("rec", claim=tuple(np.ones(n, np.float32) for n in lengths))
    heard = []
    for share in ((0, 2), (1, 2)):
        _, turns = build_session([voice], 0.05, np.random.default_rng(0), "claim", share)
        heard.append({round(t.duration * 16000) for t in turns})
    assert heard == [{4000, 6000}, {5000}]
    _, turns = build_session([voice], 0.05, np.random.default_rng(0), "claim")
    assert {round(t.duration * 16000) for t in turns} == set(lengths)  # one session: all


def test_every_generated_voice_is_the_variant_it_names():
    """espeak-ng falls back to the bare language, without a word, for a variant after "en-gb"
    or one named in the wrong case: two "different" members were once one voice. The check
    sees both, and every group's voices pass it and differ from each other."""
    assert not variant_spoken("en-gb+m5") and not variant_spoken("en-us+gene")
    assert variant_spoken("en+m5") and variant_spoken("en-us+Gene")
    groups = espeak_groups()
    assert set(groups) <= set(GROUPS) and len(groups) >= 5
    for voices in groups.values():
        specs = [v.espeak for v in voices]
        assert len(set(specs)) == len(specs)
        assert len({spec[0] for spec in specs if spec}) == len(specs)  # no voice twice


def test_a_groups_cohort_is_other_groups_and_the_never_tuned_ones_lend_none_to_tuning():
    assert set(COHORTS) == set(GROUPS)
    for split, cohort in COHORTS.items():
        assert split not in cohort and set(cohort) <= set(GROUPS)
    for split in TUNE_GROUPS:
        assert not {c for c in COHORTS[split] if c.startswith("holdout")}


def test_wrong_suggestions_cost_precision_and_the_choice_puts_precision_first():
    ana, bo = voice_vectors(2, seed=4)
    scored = {
        "voiceprints": {"ana": ana, "bo": bo},
        "sessions": [
            Heard(
                voices=(
                    SpeakerVoice("bo", tuple(heard_again(bo, noise=0.3, seed=2)), "e", 20),
                    # Cy never claimed, and sounds rather like Ana
                    SpeakerVoice("cy", tuple(heard_again(ana, noise=0.8, seed=3)), "e", 20),
                ),
                truth={"bo": "bo", "cy": "cy"},
                present=frozenset({"bo", "cy"}),
            )
        ],
    }
    loose = evaluate(scored, threshold=-1.0, margin=0.0)
    assert loose == {
        "suggestions": 2,
        "wrong": 1,
        "eligible": 1,
        "precision": 0.5,
        "coverage": 1.0,
        # Cy, who has no voiceprint, named as Ana, who was not there
        "wrong_kinds": {
            "speaker_without_voiceprint": 1,
            "speaker_is_another_member": 0,
            "speaker_is_nobody": 0,
            "naming_an_absent_member": 1,
        },
    }
    strict = evaluate(scored, threshold=0.9, margin=0.0)
    assert strict == {
        "suggestions": 1,
        "wrong": 0,
        "eligible": 1,
        "precision": 1.0,
        "coverage": 1.0,
        "wrong_kinds": dict.fromkeys(WRONG_KINDS, 0),
    }
    points = [
        {"threshold": 0.5, "margin": 0.0, **loose},
        {"threshold": 0.9, "margin": 0.0, **strict},
    ]
    assert choose(points) == (0.9, 0.0)
    with pytest.raises(BenchError):
        choose(points[:1])


def test_a_diarized_speaker_is_the_voice_it_overlaps_most_and_is_judged_as_such():
    reference = [
        SpeakerTurn(0, 10, "ana"),
        SpeakerTurn(10, 20, "bo"),
        SpeakerTurn(20, 30, "ana"),
        SpeakerTurn(30, 34, "cy"),
    ]
    # the diarizer merged Cy into Ana's second turn, split Bo, and heard a noise nobody made
    turns = [
        SpeakerTurn(0, 9, "SPEAKER_00"),
        SpeakerTurn(9.5, 14, "SPEAKER_01"),
        SpeakerTurn(14, 20, "SPEAKER_02"),
        SpeakerTurn(20, 34, "SPEAKER_00"),
        SpeakerTurn(40, 41, "SPEAKER_03"),
    ]
    truth = truly(turns, reference)
    assert truth == {"SPEAKER_00": "ana", "SPEAKER_01": "bo", "SPEAKER_02": "bo"}
    ana, bo = voice_vectors(2, seed=5)
    heard = Heard(
        voices=(
            SpeakerVoice("SPEAKER_00", tuple(ana), "e", 20),
            SpeakerVoice("SPEAKER_01", tuple(heard_again(bo, noise=0.2, seed=1)), "e", 4),
            SpeakerVoice("SPEAKER_02", tuple(bo), "e", 6),
            SpeakerVoice("SPEAKER_03", tuple(heard_again(ana, noise=0.1, seed=2)), "e", 1),
        ),
        truth=truth,
        present=frozenset({"ana", "bo", "cy"}),
    )
    scored = {"voiceprints": {"ana": ana, "bo": bo}, "sessions": [heard]}
    # Ana goes to SPEAKER_00 (most like her), Bo to one of his halves: both right; the noise
    # gets nobody (each member is suggested once); coverage is of the two claimed voices
    assert evaluate(scored, threshold=0.5, margin=0.0) == {
        "suggestions": 2,
        "wrong": 0,
        "eligible": 2,
        "precision": 1.0,
        "coverage": 1.0,
        "wrong_kinds": dict.fromkeys(WRONG_KINDS, 0),
    }
    lost = Heard(heard.voices[3:], truth, heard.present)  # only the noise was heard
    assert evaluate({**scored, "sessions": [lost]}, threshold=0.5, margin=0.0) == {
        "suggestions": 1,
        "wrong": 1,
        "eligible": 2,
        "precision": 0.0,
        "coverage": 0.0,
        # the noise (nobody) named as Ana, who was there
        "wrong_kinds": {**dict.fromkeys(WRONG_KINDS, 0), "speaker_is_nobody": 1},
    }


def test_floors_come_from_the_claimed_voices_and_the_slack_is_chosen_precision_first():
    ana, bo = voice_vectors(2, seed=6)
    ana_1 = heard_again(ana, noise=0.2, seed=1)  # her two claims agree closely
    ana_2 = heard_again(ana, noise=0.2, seed=2)
    own = float(np.dot(ana_1, ana_2))
    # Cy never claimed; he sounds like Ana, but less than her own voices sound like each other
    cy = heard_again(ana, noise=1.2, seed=3)
    print_ = np.array(ana_1) + np.array(ana_2)
    score = float(np.dot(cy, print_ / np.linalg.norm(print_)))
    assert 0.5 < score < own - 0.02
    scored = {
        "voiceprints": {"ana": list(print_ / np.linalg.norm(print_)), "bo": bo},
        "claims": {
            "ana": (
                SpeakerVoice("a1", tuple(ana_1), "e", 20),
                SpeakerVoice("a2", tuple(ana_2), "e", 20),
            ),
            "bo": (SpeakerVoice("b1", tuple(bo), "e", 20),),
        },
        "sessions": [
            Heard(
                voices=(SpeakerVoice("cy", tuple(cy), "e", 20),),
                truth={"cy": "cy"},
                present=frozenset({"bo", "cy"}),
            )
        ],
    }
    assert evaluate(scored, threshold=0.3, margin=0.0)["wrong"] == 1
    assert evaluate(scored, 0.3, 0.0, floors=FloorRule(slack=0.0))["suggestions"] == 0
    assert evaluate(scored, 0.3, 0.0, floors=FloorRule(slack=1.0))["wrong"] == 1
    points = [
        {"slack": 0.0, "suggestions": 8, "wrong": 0, "precision": 1.0, "coverage": 0.7},
        {"slack": 0.05, "suggestions": 9, "wrong": 0, "precision": 1.0, "coverage": 0.8},
        {"slack": 0.1, "suggestions": 9, "wrong": 0, "precision": 1.0, "coverage": 0.8},
        {"slack": 0.2, "suggestions": 10, "wrong": 1, "precision": 0.9, "coverage": 0.9},
    ]
    assert choose_slack(points) == 0.05  # the best safe coverage; ties: the strictest
    with pytest.raises(BenchError):
        choose_slack(points[3:])
