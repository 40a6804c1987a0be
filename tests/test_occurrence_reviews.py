"""A confidence on every count, and disputes that fix them (issue 14), on real Postgres: the
threshold decides what counts, members dispute and confirm (the speaker's own word wins),
every change is recorded, a recount keeps human decisions, a group's judgements rate its
later sessions, and concurrent decisions on one occurrence end in one state."""

from __future__ import annotations

import itertools
import threading
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

import lifecycle
from models import OccurrenceReview, Session, WordOccurrence
from processing import operations, rows
from processing.clips import Clips
from processing.results import stored_result
from services import singlish
from services.analysis import AnalysedSegment, SessionAnalysis, SpeakerSummary
from services.domain import Emotion, Utterance, Word
from services.singlish.confidence import Rating, load_calibration, rate_for_group
from services.singlish.dictionary import load_corrections
from storage import create_storage
from tests.factories import Phone, spoken_session

# A sure "walao" and "lah" (the recogniser's probability 0.95), an unsure "can" (0.3): the
# shipped calibration rates the "can" far lower (an everyday English word, heard unsure).
LINES = [("SPEAKER_00", "walao the queue so long lah", 0.95), ("SPEAKER_01", "can or not", 0.3)]


def _recount(session_factory, settings, session_id: str, min_confidence: float) -> int:
    rating = Rating(load_calibration(), min_confidence)
    totals = operations.recount(
        session_factory,
        create_storage(settings),
        settings,
        load_corrections(),
        [uuid.UUID(session_id)],
        rating,
    )
    return totals[uuid.UUID(session_id)]


def _occurrences(client, user, session_id: str) -> dict[str, dict]:
    resp = client.get(f"/sessions/{session_id}/occurrences", headers=user.headers)
    assert resp.status_code == 200, resp.text
    return {o["word"]: o for o in resp.json()["occurrences"]}


def _counts(client, user, session_id: str) -> dict[str, dict[str, int]]:
    resp = client.get(f"/sessions/{session_id}/speakers", headers=user.headers)
    return {s["speaker_label"]: s["word_counts"] for s in resp.json()["speakers"]}


def _between(client, user, session_id: str) -> float:
    """A threshold between the sure and the unsure occurrences' confidences."""
    found = _occurrences(client, user, session_id)
    sure, unsure = found["lah"]["confidence"], found["can"]["confidence"]
    assert 0 <= unsure < sure <= 1, found
    return (sure + unsure) / 2


def test_the_threshold_decides_what_counts_and_recount_applies_it(
    client, make_user, settings, session_factory
):
    user = make_user()
    ready = spoken_session(Phone(client, user.headers), settings, LINES)
    assert _recount(session_factory, settings, ready.session_id, 0.0) == 3
    assert _counts(client, user, ready.session_id) == {
        "SPEAKER_00": {"lah": 1, "walao": 1},
        "SPEAKER_01": {"can": 1},
    }
    threshold = _between(client, user, ready.session_id)

    assert _recount(session_factory, settings, ready.session_id, threshold) == 2
    found = _occurrences(client, user, ready.session_id)
    assert set(found) == {"walao", "lah", "can"}  # the possible one is still listed
    assert [found[w]["counted"] for w in ("walao", "lah", "can")] == [True, True, False]
    assert all(o["decision"] is None and o["confidence"] is not None for o in found.values())
    possible = client.get(
        f"/sessions/{ready.session_id}/occurrences",
        params={"counted": "false"},
        headers=user.headers,
    )
    assert [o["word"] for o in possible.json()["occurrences"]] == ["can"]
    assert _counts(client, user, ready.session_id) == {
        "SPEAKER_00": {"lah": 1, "walao": 1},
        "SPEAKER_01": {},
    }
    # `lahstats process --json` writes the same document: both occurrences, one count
    with session_factory() as db:
        result = stored_result(db, create_storage(settings), uuid.UUID(ready.session_id))
    assert {o["word"]: o["counted"] for o in result["occurrences"]} == {
        "walao": True,
        "lah": True,
        "can": False,
    }
    assert all(0 <= o["confidence"] <= 1 for o in result["occurrences"])
    assert [s["word_counts"] for s in result["speakers"]] == [{"lah": 1, "walao": 1}, {}]


def test_disputes_and_confirmations_change_counts_and_leaderboard(
    client, make_user, settings, session_factory
):
    owner, member, other = make_user(), make_user(), make_user()
    phone = Phone(client, owner.headers)
    ready = spoken_session(phone, settings, LINES, phone.group([member.id, other.id]))
    _recount(session_factory, settings, ready.session_id, 0.0)
    threshold = _between(client, owner, ready.session_id)
    _recount(session_factory, settings, ready.session_id, threshold)
    sid, speaker = ready.session_id, ready.speaker_ids[0]
    claimed = client.post(
        f"/sessions/{sid}/claim",
        json={"speaker_id": speaker, "claim_type": "self"},
        headers=owner.headers,
    )
    assert claimed.status_code == 200, claimed.text
    lah = _occurrences(client, owner, sid)["lah"]["id"]

    def act(user, action: str, occurrence: str = lah, **body: str) -> httpx.Response:
        return client.post(
            f"/sessions/{sid}/occurrences/{occurrence}/{action}",
            json=body or None,
            headers=user.headers,
        )

    def board() -> dict[str, int]:
        stats = client.get(f"/groups/{ready.group_id}/stats", headers=owner.headers).json()
        return next(m for m in stats["members"] if m["user_id"] == str(owner.id))["word_counts"]

    assert board() == {"lah": 1, "walao": 1}
    disputed = act(member, "dispute", reason="that wasn't 'lah'")
    assert disputed.status_code == 200, disputed.text
    assert disputed.json()["counted"] is False and disputed.json()["decision"] == "disputed"
    assert disputed.json()["decided_by"] == str(member.id)
    assert board() == {"walao": 1}  # at once, for everyone
    assert _counts(client, other, sid)["SPEAKER_00"] == {"walao": 1}

    # a disputed occurrence of a claimed speaker: only the speaker (or the disputer) undoes it
    refused = act(other, "confirm")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "occurrence_disputed"
    assert act(owner, "confirm").json()["counted"] is True
    assert board() == {"lah": 1, "walao": 1}
    # ... and the speaker's own decision stands against the others
    refused = act(member, "dispute")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "speaker_decided"

    # a possible occurrence (below the threshold) counts once a member confirms it
    can = _occurrences(client, owner, sid)["can"]
    assert can["counted"] is False
    assert act(other, "confirm", can["id"]).json()["counted"] is True
    assert _counts(client, owner, sid)["SPEAKER_01"] == {"can": 1}

    history = client.get(f"/sessions/{sid}/occurrences/{lah}/reviews", headers=other.headers)
    assert history.status_code == 200, history.text
    steps = [
        (r["action"], r["user_id"], r["decision_before"], r["decision_after"], r["counted_after"])
        for r in history.json()["reviews"]
    ]
    assert steps == [
        ("dispute", str(member.id), None, "disputed", False),
        ("confirm", str(owner.id), "disputed", "confirmed", True),
    ]
    assert history.json()["reviews"][0]["reason"] == "that wasn't 'lah'"


def test_other_groups_get_404(client, make_user, settings, session_factory):
    user, stranger = make_user(), make_user()
    phone = Phone(client, user.headers)
    ready = spoken_session(phone, settings, LINES)
    elsewhere = spoken_session(phone, settings, LINES)
    _recount(session_factory, settings, ready.session_id, 0.0)
    _recount(session_factory, settings, elsewhere.session_id, 0.0)
    lah = _occurrences(client, user, ready.session_id)["lah"]["id"]
    for action in ("dispute", "confirm"):
        url = f"/sessions/{ready.session_id}/occurrences/{lah}/{action}"
        assert client.post(url, headers=stranger.headers).status_code == 404
        # an occurrence of another session, even of one's own group, is not found here
        wrong = f"/sessions/{elsewhere.session_id}/occurrences/{lah}/{action}"
        assert (
            client.post(wrong, headers=user.headers).json()["error"]["code"]
            == "occurrence_not_found"
        )
        missing = f"/sessions/{ready.session_id}/occurrences/{uuid.uuid4()}/{action}"
        assert client.post(missing, headers=user.headers).status_code == 404
    reviews = f"/sessions/{ready.session_id}/occurrences/{lah}/reviews"
    assert client.get(reviews, headers=stranger.headers).status_code == 404
    assert _occurrences(client, user, ready.session_id)["lah"]["counted"] is True
    too_long = client.post(
        f"/sessions/{ready.session_id}/occurrences/{lah}/dispute",
        json={"reason": "x" * 201},
        headers=user.headers,
    )
    assert too_long.status_code == 422


def test_a_recount_keeps_human_decisions_and_the_group_learns_from_them(
    client, make_user, settings, session_factory
):
    user = make_user()
    phone = Phone(client, user.headers)
    first = spoken_session(phone, settings, LINES)
    later = spoken_session(phone, settings, LINES, first.group_id)
    _recount(session_factory, settings, first.session_id, 0.0)
    threshold = _between(client, user, first.session_id)
    before = _occurrences(client, user, first.session_id)
    client.post(
        f"/sessions/{first.session_id}/occurrences/{before['lah']['id']}/dispute",
        headers=user.headers,
    )
    client.post(
        f"/sessions/{first.session_id}/occurrences/{before['can']['id']}/confirm",
        headers=user.headers,
    )

    _recount(session_factory, settings, first.session_id, threshold)
    after = _occurrences(client, user, first.session_id)
    assert {w: (o["id"], o["decision"], o["counted"]) for w, o in after.items()} == {
        "walao": (before["walao"]["id"], None, True),
        "lah": (before["lah"]["id"], "disputed", False),
        "can": (before["can"]["id"], "confirmed", True),
    }
    with session_factory() as db:
        history = db.scalars(select(OccurrenceReview.occurrence_id)).all()
    assert sorted(map(str, history)) == sorted([before["lah"]["id"], before["can"]["id"]])

    # the group's dispute of this "lah" rates the same reading lower in its later session;
    # its confirmation of "can" rates that one higher
    _recount(session_factory, settings, later.session_id, threshold)
    rated = _occurrences(client, user, later.session_id)
    assert rated["lah"]["confidence"] < before["lah"]["confidence"]
    assert rated["can"]["confidence"] > before["can"]["confidence"]
    assert rated["walao"]["confidence"] == before["walao"]["confidence"]  # never disputed
    assert rated["lah"]["decision"] is None  # evidence, not a decision
    with session_factory() as db:
        versions = set(db.scalars(select(WordOccurrence.confidence_version)))
    assert any("+fb-" in v for v in versions), versions


def test_a_reprocess_gives_decisions_to_the_same_words_heard_again(
    client, make_user, settings, session_factory
):
    user = make_user()
    ready = spoken_session(Phone(client, user.headers), settings, LINES)
    _recount(session_factory, settings, ready.session_id, 0.0)
    before = _occurrences(client, user, ready.session_id)
    url = f"/sessions/{ready.session_id}/occurrences"
    client.post(f"{url}/{before['lah']['id']}/dispute", headers=user.headers)

    # the worker runs the session again and hears the same words 0.1 s later
    session_id = uuid.UUID(ready.session_id)
    with session_factory() as db:
        session = db.get(Session, session_id)
        assert session is not None
        lifecycle.reset(session)
        db.commit()
    attempt = rows.take(session_factory, session_id, timedelta(minutes=5), 3)
    assert isinstance(attempt, rows.Attempt)
    outcome = rows.Outcome(
        _heard(LINES, shift=0.1), Clips({}, {}), 9.0, [], 1.0, "v", Rating(load_calibration())
    )
    assert rows.save(session_factory, attempt, outcome) is not None

    after = _occurrences(client, user, ready.session_id)
    assert after["lah"]["id"] != before["lah"]["id"]
    assert (after["lah"]["decision"], after["lah"]["counted"]) == ("disputed", False)
    assert after["lah"]["start"] == pytest.approx(before["lah"]["start"] + 0.1)
    assert after["walao"]["decision"] is None and after["walao"]["counted"]
    history = client.get(f"{url}/{after['lah']['id']}/reviews", headers=user.headers).json()
    assert [r["action"] for r in history["reviews"]] == ["dispute"]


def _heard(lines: list[tuple[str, str, float]], shift: float) -> rows.Heard:
    """What the stages would make of ``lines`` as :func:`tests.factories.spoken_session`
    stores them, every word ``shift`` seconds later (no models: the reading is the product's)."""
    segments = []
    for n, (label, text, probability) in enumerate(lines):
        start = 2.0 * n + shift
        words = tuple(
            Word(start + 0.3 * i, start + 0.3 * (i + 1), f" {w}", probability)
            for i, w in enumerate(text.split())
        )
        utterance = Utterance(label, start, words[-1].end, words)
        reading = singlish.read(utterance, load_corrections(), (), Rating(load_calibration()))
        segments.append(
            AnalysedSegment(
                label,
                utterance.start,
                utterance.end,
                text,
                reading.corrected_text,
                Emotion("neutral", 1.0),
                words=words,
                occurrences=reading.occurrences,
            )
        )
    speakers = tuple(
        SpeakerSummary(label, 1.0, 1, {}, "neutral") for label in sorted({who for who, *_ in lines})
    )
    return rows.Heard(SessionAnalysis(tuple(segments), speakers), turns=())


def test_concurrent_disputes_and_confirmations_end_in_one_state(
    live_server, make_user, settings, session_factory
):
    users = [make_user() for _ in range(4)]
    with httpx.Client(base_url=live_server, timeout=30) as http:
        phone = Phone(http, users[0].headers)
        ready = spoken_session(phone, settings, LINES, phone.group([u.id for u in users[1:]]))
        _recount(session_factory, settings, ready.session_id, 0.0)
        occurrences = http.get(
            f"/sessions/{ready.session_id}/occurrences", headers=users[0].headers
        ).json()["occurrences"]
    lah = next(o["id"] for o in occurrences if o["word"] == "lah")
    url = f"{live_server}/sessions/{ready.session_id}/occurrences/{lah}"
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def decide(n: int) -> None:
        user = users[n % 4]
        barrier.wait()
        resp = httpx.post(
            f"{url}/{'dispute' if n % 2 else 'confirm'}", headers=user.headers, timeout=30
        )
        statuses.append(resp.status_code)

    threads = [threading.Thread(target=decide, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 8  # nobody claimed the speaker: every member may decide

    with session_factory() as db:
        row = db.get(WordOccurrence, uuid.UUID(lah))
        assert row is not None
        reviews = db.scalars(
            select(OccurrenceReview)
            .where(OccurrenceReview.occurrence_id == row.id)
            .order_by(OccurrenceReview.created_at)
        ).all()
    # one chain: each change starts where the one before ended, and the row is the last one
    assert reviews and reviews[0].decision_before is None
    for before, after in itertools.pairwise(reviews):
        assert after.decision_before == before.decision_after
        assert after.counted_before == before.counted_after
    assert (row.decision, row.counted) == (reviews[-1].decision_after, reviews[-1].counted_after)
    assert row.counted == (row.decision == "confirmed")


def test_group_feedback_moves_a_reading_by_its_judgements():
    """The pure rule behind the group's learning: two disputes of a sure reading take it
    below any sensible threshold; confirmations lift an unsure one; what was let stand only
    weighs against disputes."""
    from services.singlish.confidence import group_feedback, reading_key
    from services.singlish.occurrences import Occurrence

    def heard(word: str, probability: float) -> Occurrence:
        return Occurrence("S", word, 0.0, 0.3, word, word, "asr", "", "v", probability)

    calibration = load_calibration()
    sure, unsure = heard("lah", 0.95), heard("can", 0.3)
    nothing = group_feedback([])
    disputed = group_feedback([(reading_key(sure), "disputed")] * 2)
    confirmed = group_feedback([(reading_key(unsure), "confirmed")] * 2)
    assert nothing.version == "" and disputed.version != confirmed.version
    assert (
        rate_for_group(sure, calibration, disputed)
        < 0.5
        < rate_for_group(sure, calibration, nothing)
    )
    assert rate_for_group(unsure, calibration, confirmed) > rate_for_group(
        unsure, calibration, nothing
    )
    assert rate_for_group(unsure, calibration, disputed) == rate_for_group(
        unsure, calibration, nothing
    )
    # one dispute among many occurrences the group let stand barely moves the reading, and
    # letting sure ones stand never lifts an unsure one
    mostly_fine = group_feedback(
        [(reading_key(sure), "disputed")] + [(reading_key(sure), "accepted")] * 10
    )
    sure_alone = rate_for_group(sure, calibration, nothing)
    assert sure_alone - 0.1 < rate_for_group(sure, calibration, mostly_fine) <= sure_alone
    low_lah = heard("lah", 0.05)
    assert rate_for_group(low_lah, calibration, mostly_fine) <= rate_for_group(
        low_lah, calibration, nothing
    )


# Real words from the recogniser (the default pipeline on the noisy tune set,
# research/noisy_voices_tune.py): (start s, end s, text, probability). In n02_bus_interchange
# (cafe noise at 10 dB) the hotword-prompted decoder wrote "shiok" twice, sure of it, between
# words it could not read; nobody said "shiok" there. In n05_army_reunion a "lah" that was
# said, heard unsure, among words it heard fairly well.
PROMPTED_RUN = [
    (11.96, 12.04, " fly,", 0.051),
    (12.2, 12.3, " shiok,", 0.905),
    (12.48, 12.68, " play,", 0.025),
    (12.84, 13.36, " shiok.", 0.826),
]
SAID_LAH = [
    (14.1, 14.36, " Not", 0.589),
    (14.36, 14.56, " worth", 0.676),
    (14.56, 14.72, " me", 0.715),
    (14.72, 14.92, " lah,", 0.118),
    (15.26, 15.38, " you", 0.507),
    (15.38, 15.52, " owe", 0.378),
    (15.52, 15.72, " me", 0.934),
    (15.72, 15.82, " a", 0.493),
    (15.82, 15.94, " so", 0.246),
    (15.94, 16.14, " slow!", 0.934),
]


def _read(words, rating: Rating) -> list:
    utterance = Utterance("S", words[0][0], words[-1][1], tuple(Word(*w) for w in words))
    return list(singlish.read(utterance, load_corrections(), (), rating).occurrences)


def test_an_occurrence_carries_its_context_and_the_run_it_sits_in():
    """What the new confidence features read, from real recognised words: the neighbours' mean
    probability (up to 3 words either side, not its own), the other target words of the
    utterance, and the ASR floor."""
    from services.singlish.confidence import ASR_FLOOR, features

    first, second = _read(PROMPTED_RUN, Rating())
    assert (first.word, second.word) == ("shiok", "shiok")
    assert first.context_probability == round((0.051 + 0.025 + 0.826) / 3, 4)
    assert second.context_probability == round((0.051 + 0.905 + 0.025) / 3, 4)
    assert features(first)["other_targets"] == features(second)["other_targets"] == 1
    assert features(first)["asr_floor"] == 0  # sure of the word itself: only its context tells
    (lah,) = _read(SAID_LAH, Rating())
    assert lah.context_probability == round((0.589 + 0.676 + 0.715 + 0.507 + 0.378 + 0.934) / 6, 4)
    assert features(lah)["other_targets"] == 0
    low = _read([(*w[:3], 0.05) if w[2] == " lah," else w for w in SAID_LAH], Rating())[0]
    assert features(low)["asr_floor"] == 1 and low.score < ASR_FLOOR


def test_a_run_written_over_noise_is_rated_below_the_same_words_heard_clearly():
    """The shipped calibration on real evidence: the prompted run's "shiok"s, which
    confidence-1 rated 0.98-0.99, are rated lower than the same words among neighbours heard
    clearly, and lower still than one "shiok" alone in a clear sentence; the "lah" that was
    said, heard unsure among clear words, still counts at the default operating point."""
    rating = Rating(load_calibration(), 0.7)
    run = _read(PROMPTED_RUN, rating)
    clear = _read(
        [(a, b, t, 0.95 if "shiok" not in t else p) for a, b, t, p in PROMPTED_RUN], rating
    )
    alone = _read(
        [(11.96, 12.04, " so", 0.95), (12.2, 12.3, " shiok,", 0.905), (12.48, 12.68, " man", 0.95)],
        rating,
    )
    for noisy, heard_clearly in zip(run, clear, strict=True):
        assert noisy.confidence < heard_clearly.confidence - 0.15, (noisy, heard_clearly)
        assert heard_clearly.confidence < alone[0].confidence
    assert max(o.confidence for o in run) < 0.75
    (lah,) = _read(SAID_LAH, rating)
    assert lah.confidence >= rating.min_confidence
