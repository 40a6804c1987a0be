"""Cohort score normalisation of voiceprint suggestions (AS-norm, issue 17): the arithmetic,
why it helps (a voice from a crowded region of the space no longer passes for a member it
merely shares a crowd with), and, on real Postgres, that a group's cohort is the voiceprints of
people outside it, never its own members'.

The voices are hand-built unit vectors as the job stores them (``tests.factories``): a crowd
is one vector plus noise, several times; real voices are scored by ``python -m bench
voiceprints``."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sqlalchemy import select

import voice_library
from models import SpeakerSuggestion, Voiceprint
from services.domain import SpeakerVoice
from services.voiceprints import CohortNorm, as_norm, match_voices
from tests.factories import (
    TEST_EMBEDDER,
    Phone,
    give_voices,
    heard_again,
    ready_session,
    remember_self,
    suggest,
    voice_vectors,
)

WORDS = {"SPEAKER_00": {"lah": 2}, "SPEAKER_01": {"meh": 1}, "SPEAKER_02": {"sia": 3}}


def _crowd(center: list[float], people: int, seed: int) -> list[list[float]]:
    """``people`` voices near ``center``: one synthesizer's variants, as CAM++ hears them."""
    return [heard_again(center, noise=0.5, seed=seed + i) for i in range(people)]


def test_as_norm_averages_the_z_scores_against_either_sides_nearest_cohort_voices():
    voices = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    prints = np.array([[0.6, 0.8, 0.0]], dtype=np.float32)
    cohort = np.array([[0.8, 0.6, 0.0], [0.0, 0.0, 1.0], [0.6, 0.0, 0.8]], dtype=np.float32)
    scores = voices @ prints.T  # 0.6 and 0.8
    normalised = as_norm(scores, voices, prints, cohort, top_k=2)
    # voice 0's two nearest cohort cosines: 0.8, 0.6 (mean 0.7, std 0.1); voice 1's: 0.6, 0.0
    # (0.3, 0.3); the print's: 0.96, 0.36 (0.66, 0.3)
    expected = [
        [((0.6 - 0.7) / 0.1 + (0.6 - 0.66) / 0.3) / 2],
        [((0.8 - 0.3) / 0.3 + (0.8 - 0.66) / 0.3) / 2],
    ]
    assert np.allclose(normalised, expected, atol=1e-5)


def test_an_impostor_from_a_crowded_region_loses_to_the_genuine_match_it_used_to_beat():
    center, bo = voice_vectors(2, seed=11)
    ana = heard_again(center, noise=0.5, seed=1)  # a member whose voice has many near it
    voices = [
        SpeakerVoice("S0", tuple(heard_again(center, noise=0.5, seed=2)), "e", 20),  # a guest
        SpeakerVoice("S1", tuple(heard_again(bo, noise=0.8, seed=3)), "e", 20),  # Bo, unclear
    ]
    prints = {"ana": ana, "bo": bo}
    raw = match_voices(voices, prints, min_score=0.7, min_margin=0.05)
    by_speaker = {m.speaker: m for m in raw}
    # raw cosines: the guest scores higher against Ana than Bo against his own voiceprint
    assert by_speaker["S0"].score > by_speaker["S1"].score
    assert [(m.speaker, m.user) for m in raw] == [("S0", "ana"), ("S1", "bo")]

    cohort = tuple(tuple(v) for v in _crowd(center, 20, seed=100))
    norm = CohortNorm(cohort, top_k=5, min_score=3.0, min_margin=1.0)
    normalised = match_voices(voices, prints, 0.7, 0.05, norm)
    # normalised, the guest stands out from nobody in the crowd: only Bo is suggested
    assert [(m.speaker, m.user) for m in normalised] == [("S1", "bo")]
    (bo_match,) = normalised
    assert bo_match.cosine == pytest.approx(by_speaker["S1"].score, abs=1e-6)
    assert bo_match.score > 3.0 and bo_match.margin > 1.0
    loose = CohortNorm(cohort, top_k=5, min_score=-1e9, min_margin=0.0)
    every = {m.speaker: m.score for m in match_voices(voices, prints, 0.7, 0.05, loose)}
    assert every["S1"] > every["S0"]  # the ordering itself flipped

    # a cohort smaller than top k does not apply: raw cosines and the raw thresholds
    small = CohortNorm(cohort[:4], top_k=5, min_score=3.0, min_margin=1.0)
    assert not small.applies
    assert match_voices(voices, prints, 0.7, 0.05, small) == raw


def test_suggestions_are_normalised_against_other_groups_voiceprints_never_the_groups_own(
    client, settings, make_user, session_factory
):
    center, bo_voice, cy_voice = voice_vectors(3, seed=21)
    ana_voice = heard_again(center, noise=0.5, seed=1)
    # group G: Ana (whose voice is in a crowded region), Bo and Cy; Ana and Bo keep voiceprints
    ana, bo, cy = make_user(), make_user(), make_user()
    first = ready_session(Phone(client, ana.headers), settings, WORDS, [bo.id, cy.id])
    give_voices(
        settings,
        first.session_id,
        {"SPEAKER_00": ana_voice, "SPEAKER_01": bo_voice, "SPEAKER_02": cy_voice},
    )
    remember_self(client, ana, first.session_id, first.speaker_ids[0])
    remember_self(client, bo, first.session_id, first.speaker_ids[1])
    # group H: Dee and Eve, voices of the same crowd, keep voiceprints; Bo is a member too
    dee, eve = make_user(), make_user()
    other = ready_session(Phone(client, dee.headers), settings, WORDS, [eve.id, bo.id])
    dee_voice, eve_voice = _crowd(center, 2, seed=50)
    give_voices(settings, other.session_id, {"SPEAKER_00": dee_voice, "SPEAKER_01": eve_voice})
    remember_self(client, dee, other.session_id, other.speaker_ids[0])
    remember_self(client, eve, other.session_id, other.speaker_ids[1])

    group_id = uuid.UUID(first.group_id)
    with session_factory() as db:
        stored = {
            row.user_id: row.embedding
            for row in db.scalars(select(Voiceprint).where(Voiceprint.embedder == TEST_EMBEDDER))
        }
        cohort = voice_library.cohort_voiceprints(db, group_id, TEST_EMBEDDER, limit=300)
        # the people outside G only: not Ana, not Bo (though he is in H too)
        assert sorted(cohort) == sorted([stored[dee.id], stored[eve.id]])
        assert voice_library.cohort_voiceprints(db, group_id, TEST_EMBEDDER, limit=1) == [
            stored[eve.id]  # the most recently updated
        ]
        assert voice_library.cohort_voiceprints(db, group_id, "another@space", limit=300) == []

    # next week, without Ana: a guest from her crowd, Bo heard unclearly, Cy (no voiceprint)
    later = ready_session(Phone(client, bo.headers), settings, WORDS, group_id=first.group_id)
    guest = heard_again(center, noise=0.5, seed=2)
    bo_again = heard_again(bo_voice, noise=0.8, seed=3)
    give_voices(
        settings,
        later.session_id,
        {"SPEAKER_00": guest, "SPEAKER_01": bo_again, "SPEAKER_02": cy_voice},
    )

    def suggested() -> dict[str, tuple[uuid.UUID, float, float]]:
        with session_factory() as db:
            rows = db.scalars(
                select(SpeakerSuggestion).where(
                    SpeakerSuggestion.session_id == uuid.UUID(later.session_id)
                )
            )
            return {str(r.speaker_id): (r.user_id, r.score, r.margin) for r in rows}

    # raw cosines (the default): the guest is suggested as Ana
    assert suggest(settings, later.session_id) == 2
    assert {s: u for s, (u, _, _) in suggested().items()} == {
        later.speaker_ids[0]: ana.id,
        later.speaker_ids[1]: bo.id,
    }

    # AS-norm against H's crowd: only Bo, his margin the one a cohort of Dee and Eve gives
    settings.voiceprint_score_norm = "as-norm"
    settings.voiceprint_cohort_top_k = 2
    settings.voiceprint_norm_min_score = 10.0  # a cohort of two: z-scores run large
    settings.voiceprint_norm_min_margin = 5.0
    assert suggest(settings, later.session_id) == 1
    ((speaker, (user, score, margin)),) = suggested().items()
    assert (speaker, user) == (later.speaker_ids[1], bo.id)
    voice = np.array([bo_again], dtype=np.float32)
    members = np.array([stored[ana.id], stored[bo.id]], dtype=np.float32)

    def margin_against(cohort: list[list[float]]) -> float:
        scores = as_norm(voice @ members.T, voice, members, np.array(cohort, np.float32), 2)
        return float(scores[0, 1] - scores[0, 0])

    assert margin == pytest.approx(margin_against([stored[dee.id], stored[eve.id]]), rel=1e-3)
    with_own = margin_against([stored[dee.id], stored[eve.id], stored[ana.id], stored[bo.id]])
    assert margin != pytest.approx(with_own, rel=1e-2)
    assert score == pytest.approx(float(np.dot(bo_again, stored[bo.id])), abs=1e-4)  # a cosine

    # a cohort smaller than top k: raw cosines again, the guest suggested as before
    settings.voiceprint_cohort_top_k = 3
    assert suggest(settings, later.session_id) == 2
