"""The voiceprint benchmark's own arithmetic (seconds): sessions are built as described, a
wrong suggestion costs precision, and the operating point is chosen for precision first."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.report import BenchError
from bench.voiceprints import TUNE_ESPEAK, Voice, build_session, choose, evaluate
from services.domain import SpeakerVoice
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


def test_wrong_suggestions_cost_precision_and_the_choice_puts_precision_first():
    ana, bo = voice_vectors(2, seed=4)
    scored = {
        "voiceprints": {"ana": ana, "bo": bo},
        "sessions": [
            [
                SpeakerVoice("bo", tuple(heard_again(bo, noise=0.3, seed=2)), "e", 20),
                # Cy never claimed, and sounds rather like Ana
                SpeakerVoice("cy", tuple(heard_again(ana, noise=0.8, seed=3)), "e", 20),
            ]
        ],
    }
    loose = evaluate(scored, threshold=-1.0, margin=0.0)
    assert loose == {
        "suggestions": 2,
        "wrong": 1,
        "eligible": 1,
        "precision": 0.5,
        "coverage": 1.0,
    }
    strict = evaluate(scored, threshold=0.9, margin=0.0)
    assert strict == {
        "suggestions": 1,
        "wrong": 0,
        "eligible": 1,
        "precision": 1.0,
        "coverage": 1.0,
    }
    points = [
        {"threshold": 0.5, "margin": 0.0, **loose},
        {"threshold": 0.9, "margin": 0.0, **strict},
    ]
    assert choose(points) == (0.9, 0.0)
    with pytest.raises(BenchError):
        choose(points[:1])
