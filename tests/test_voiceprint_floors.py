"""Per-member floors of voiceprint suggestions (issue 17, speaker-dependent thresholds): the
leave-one-out arithmetic, why it helps (a voice that merely resembles a member, at a cosine a
global threshold must let through, is below what the member's own voices score), and, on real
Postgres, that the job reads each member's floor from the voices they really claimed.

The voices are hand-built unit vectors as the job stores them (``tests.factories``): a member's
claims are their voice turned a known angle either way, so their own scores are exact; real
voices are scored by ``python -m bench voiceprints``."""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest
from sqlalchemy import select

import voice_library
from models import SpeakerSuggestion
from processing.suggestions import Matching
from services.domain import SpeakerVoice
from services.voiceprints import FloorRule, match_voices, member_floors, own_scores
from tests.factories import (
    TEST_EMBEDDER,
    Phone,
    give_voices,
    ready_session,
    remember_self,
    suggest,
    voice_vectors,
)

WORDS = {"SPEAKER_00": {"lah": 2}, "SPEAKER_01": {"meh": 1}, "SPEAKER_02": {"sia": 3}}


def _directions(n: int, seed: int) -> np.ndarray:
    """``n`` orthonormal directions of the 192-dimensional space."""
    q, _ = np.linalg.qr(np.array(voice_vectors(n, seed=seed)).T)
    return q.T


def _at(base: np.ndarray, cosine: float, away: np.ndarray) -> list[float]:
    """A unit vector at ``cosine`` to ``base``, turned towards ``away`` (orthogonal to it)."""
    return (cosine * base + math.sqrt(1 - cosine**2) * away).tolist()


def _voice(name: str, vector: list[float], seconds: float = 30.0) -> SpeakerVoice:
    return SpeakerVoice(name, tuple(vector), TEST_EMBEDDER, seconds)


def test_own_scores_are_each_claim_against_the_seconds_weighted_rest():
    e = _directions(2, seed=1)
    # two claims: each one's own score is its cosine with the other
    half = math.acos(0.97) / 2
    pair = [_at(e[0], math.cos(half), e[1]), _at(e[0], math.cos(half), -e[1])]
    assert own_scores([_voice("a", pair[0]), _voice("b", pair[1])]) == pytest.approx((0.97, 0.97))
    # three: the rest is weighted by seconds, as the voiceprint is. e0 (30 s) against e1
    # (50 s): 0; the 10 s e1 against 30 e0 + 40 e1: 40 / 50; the 40 s e1 against 30 e0 + 10 e1
    three = [_voice("a", e[0].tolist(), 30), _voice("b", e[1].tolist(), 10)]
    three.append(_voice("c", e[1].tolist(), 40))
    assert own_scores(three) == pytest.approx((0.0, 0.8, 10 / math.hypot(30, 10)), abs=1e-9)
    assert own_scores(three[:1]) == ()
    rule = FloorRule(slack=0.05)
    bo = three[1:2]  # one claim: no floor
    assert member_floors({"ana": three, "bo": bo}, rule) == {"ana": pytest.approx(-0.05)}
    assert member_floors({"ana": three}, FloorRule(0.05, min_claims=4)) == {}


def test_an_impostor_near_a_tight_member_is_no_longer_them_and_their_own_voice_still_is():
    e = _directions(8, seed=2)
    # Ana claimed three times, her voices within a few degrees of each other
    claims = [_voice(f"c{i}", _at(e[0], c, e[1 + i])) for i, c in enumerate((0.985, 0.98, 0.97))]
    own = own_scores(claims)
    assert min(own) >= 0.96 and max(own) <= 0.98
    ana = np.array(
        voice_library.centroid([v.embedding for v in claims], [v.seconds for v in claims])[0]
    )
    away = e[5] - (e[5] @ ana) * ana  # orthogonal to her voiceprint
    away /= np.linalg.norm(away)
    bo = e[6]  # Bo claimed once
    prints = {"ana": ana.tolist(), "bo": bo.tolist()}
    voices = [
        _voice("S0", _at(ana, 0.88, away)),  # an outsider from her synthesizer's crowd
        _voice("S1", _at(bo, 0.70, e[7])),  # Bo, heard unclearly
    ]
    raw = match_voices(voices, prints, min_score=0.65, min_margin=0.05)
    assert [(m.speaker, m.user) for m in raw] == [("S0", "ana"), ("S1", "bo")]

    floors = member_floors({"ana": claims, "bo": claims[:1]}, FloorRule(slack=0.05))
    assert floors == {"ana": pytest.approx(min(own) - 0.05)}  # Bo: the global threshold
    floored = match_voices(voices, prints, 0.65, 0.05, floors=floors)
    assert [(m.speaker, m.user) for m in floored] == [("S1", "bo")]
    genuine = [_voice("S2", _at(ana, 0.95, away))]
    assert [m.user for m in match_voices(genuine, prints, 0.65, 0.05, floors=floors)] == ["ana"]
    # a floor under the global threshold changes nothing: the larger of the two holds
    low = {"bo": 0.1}
    assert match_voices([_voice("S1", _at(bo, 0.6, e[7]))], prints, 0.65, 0.05, floors=low) == ()


def test_the_job_holds_a_member_to_the_floor_of_her_own_claims(
    client, settings, make_user, session_factory
):
    e = _directions(8, seed=3)
    half = math.acos(0.97) / 2  # Ana's two claims agree at 0.97
    ana_1, ana_2 = _at(e[0], math.cos(half), e[1]), _at(e[0], math.cos(half), -e[1])
    ana, bo, cy = make_user(), make_user(), make_user()
    first = ready_session(Phone(client, ana.headers), settings, WORDS, [bo.id, cy.id])
    give_voices(settings, first.session_id, {"SPEAKER_00": ana_1, "SPEAKER_01": e[2].tolist()})
    remember_self(client, ana, first.session_id, first.speaker_ids[0])
    remember_self(client, bo, first.session_id, first.speaker_ids[1])  # Bo claims once
    second = ready_session(Phone(client, ana.headers), settings, WORDS, group_id=first.group_id)
    give_voices(settings, second.session_id, {"SPEAKER_00": ana_2})
    remember_self(client, ana, second.session_id, second.speaker_ids[0])

    group_id = uuid.UUID(first.group_id)
    settings.voiceprint_member_floor_slack = 0.05
    settings.voiceprint_member_floor = False
    with session_factory() as db:
        assert Matching.of(settings, TEST_EMBEDDER).floors(db, group_id) == {}  # off: none
        settings.voiceprint_member_floor = True
        floors = Matching.of(settings, TEST_EMBEDDER).floors(db, group_id)
        assert floors == {ana.id: pytest.approx(0.92, abs=1e-5)}  # 0.97 - 0.05; Bo: one claim
        assert Matching.of(settings, "another@space").floors(db, group_id) == {}

    # next week, without Ana: a guest who sounds rather like her (0.88 to her voiceprint, e0),
    # Bo heard unclearly (0.70), Cy (no voiceprint)
    later = ready_session(Phone(client, bo.headers), settings, WORDS, group_id=first.group_id)
    guest, bo_again = _at(e[0], 0.88, e[3]), _at(e[2], 0.70, e[4])
    voices = {"SPEAKER_00": guest, "SPEAKER_01": bo_again, "SPEAKER_02": e[5].tolist()}
    give_voices(settings, later.session_id, voices)

    def suggested(session_id: str) -> dict[str, uuid.UUID]:
        with session_factory() as db:
            rows = db.scalars(
                select(SpeakerSuggestion).where(
                    SpeakerSuggestion.session_id == uuid.UUID(session_id)
                )
            )
            return {str(r.speaker_id): r.user_id for r in rows}

    settings.voiceprint_member_floor = False
    assert suggest(settings, later.session_id) == 2  # the global threshold: the guest is Ana
    assert suggested(later.session_id) == {
        later.speaker_ids[0]: ana.id,
        later.speaker_ids[1]: bo.id,
    }
    settings.voiceprint_member_floor = True
    assert suggest(settings, later.session_id) == 1  # Ana's floor; Bo keeps the global one
    assert suggested(later.session_id) == {later.speaker_ids[1]: bo.id}

    # Ana herself, a little unclear (0.95), is still suggested with the floor
    third = ready_session(Phone(client, bo.headers), settings, WORDS, group_id=first.group_id)
    give_voices(settings, third.session_id, {"SPEAKER_00": _at(e[0], 0.95, e[3])})
    assert suggest(settings, third.session_id) == 1
    assert suggested(third.session_id) == {third.speaker_ids[0]: ana.id}


def test_a_members_floor_reads_only_their_latest_claims(
    client, settings, make_user, session_factory
):
    e = _directions(4, seed=4)
    ana = make_user()
    first = ready_session(Phone(client, ana.headers), settings, WORDS)
    give_voices(settings, first.session_id, {"SPEAKER_00": e[0].tolist()})
    remember_self(client, ana, first.session_id, first.speaker_ids[0])
    for vector in (e[1], e[1]):
        later = ready_session(Phone(client, ana.headers), settings, WORDS, group_id=first.group_id)
        give_voices(settings, later.session_id, {"SPEAKER_00": vector.tolist()})
        remember_self(client, ana, later.session_id, later.speaker_ids[0])
    with session_factory() as db:
        every = voice_library.claimed_voices(db, uuid.UUID(first.group_id), TEST_EMBEDDER)
        latest = voice_library.claimed_voices(
            db, uuid.UUID(first.group_id), TEST_EMBEDDER, per_member=2
        )
    assert len(every[ana.id]) == 3
    # the first claim (e0) is left out: her two latest agree perfectly
    assert sorted(tuple(np.round(v, 6)) for v, _ in latest[ana.id]) == [
        tuple(np.round(e[1], 6)),
        tuple(np.round(e[1], 6)),
    ]
