"""Live sessions (issue 16): each chunk heard as it is uploaded, `end` only finishes.

Real parts throughout: the embedded models, real speech from ../shared/corpus, the real API,
Postgres and Redis, RQ workers in this process (burst) on the product's queues."""

from __future__ import annotations

import itertools
import re
import threading
import time
import uuid
from pathlib import Path

import httpx
import jiwer
import numpy as np
import pytest
from sqlalchemy import select

from config import Settings
from models import AudioChunk, ChunkHearingRow, Segment, SpeakerVoiceRow
from processing.chunks import ChunkAudio
from processing.reconcile import reconcile
from queueing.jobs import chunk_queue
from services import voiceprints
from services.audio import decode_audio
from services.diarization import SPAN_LEAD_IN_S
from services.domain import Audio
from services.hearing import (
    LOOKAHEAD_S,
    chunk_stretches,
    coda_of,
    cut_point,
    hear_stretch,
    place,
    recognise,
    session_segments,
    stretch_of,
)
from services.transcription import transcribe
from tests.factories import Phone, drain_queues, follow_events, statuses, wav_chunks
from tests.paths import CORPUS, REPO

CONVERSATION = CORPUS / "diarization/pyannote_sample/sample.wav"  # 30 s, two speakers
SAMPLES = sorted((REPO / "samples").glob("chunk_*"))  # m4a, ogg, wav: ~30 s each


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _hypothesis(segments) -> str:
    return " ".join(w.text for s in segments for w in s.words)


def _errors(reference: str, hypothesis: str) -> int:
    """Word errors of ``hypothesis`` against the reference transcript."""
    out = jiwer.process_words(" ".join(_words(reference)), " ".join(_words(hypothesis)))
    return int(out.deletions + out.insertions + out.substitutions)


def _reference(stm: Path) -> str:
    return " ".join(line.split(maxsplit=5)[5] for line in stm.read_text().splitlines())


def _cut(audio: Audio, seconds: float) -> list[Audio]:
    step = round(seconds * audio.sample_rate)
    return [Audio(audio.samples[i : i + step]) for i in range(0, len(audio.samples), step)]


@pytest.mark.slow
def test_chunk_edges_lose_and_double_no_word_against_the_whole_file_decode(models):
    """Chunks of 6.1 s cut words and turns of a 30 s conversation; each chunk's stretch
    carries the previous chunk's unfinished tail: the stretches tile the session (every
    moment heard once, words in order) and the words are as right as the whole-file decode's.
    Hearing the same chunks each on its own (no carry) loses or garbles words at the cuts."""
    audio = decode_audio(CONVERSATION)
    chunks = _cut(audio, 6.1)
    whole = _hypothesis(transcribe(audio, models.transcriber))

    stretches = chunk_stretches(chunks)  # each chunk to its cut, then the last one's coda
    assert len(stretches) == len(chunks) + 1, "the last 6.1 s chunk ends in speech: a coda"
    heard = [
        (start, hear_stretch(stretch, transcriber=models.transcriber,
                             singlish=models.singlish, diarizer=models.diarizer))
        for start, stretch in stretches
    ]  # fmt: skip
    placed = place(heard)
    # the stretches tile the session: each moment heard once, in order
    edges = [(p.offset, p.offset + p.hearing.end - p.hearing.start) for p in placed]
    assert edges[0][0] == pytest.approx(0.0)
    assert edges[-1][1] == pytest.approx(audio.duration, abs=1e-3)
    for (_, end), (begin, _) in itertools.pairwise(edges):
        assert begin == pytest.approx(end, abs=1e-3)
    segments = session_segments(placed)
    times = [w.start for s in segments for w in s.words]
    assert times == sorted(times)

    # against what was said: the stretches do as well as the whole-file decode (give or
    # take the recogniser's own variation with its context), cutting without carrying worse
    reference = _reference(CONVERSATION.with_suffix(".stm"))
    carried = _errors(reference, _hypothesis(segments))
    naive = _errors(
        reference, " ".join(_hypothesis(transcribe(c, models.transcriber)) for c in chunks)
    )
    whole_errors = _errors(reference, whole)
    assert carried <= whole_errors + 6, (whole, _hypothesis(segments))
    assert naive > carried, "the test cannot fail: cutting without carrying lost nothing"


@pytest.mark.slow
def test_the_event_stream_carries_the_words_heard_while_recording(
    live_server, make_user, settings, redis_conn, models, tmp_path
):
    """A phone following /events while it records gets a ``transcript`` event as chunks are
    heard: each segment once, in order, together the provisional transcript."""
    user = make_user()
    chunks = wav_chunks(CONVERSATION, tmp_path, seconds=10)
    events: list[tuple[str, dict]] = []
    opened = threading.Event()
    with httpx.Client(base_url=live_server) as http:
        phone = Phone(http, user.headers)
        _, session_id = phone.session()
        stream = f"{live_server}/sessions/{session_id}/events"
        follower = threading.Thread(
            target=follow_events, args=(stream, user.headers, events, opened)
        )
        follower.start()
        assert opened.wait(60), "the stream did not open"
        for number, chunk in enumerate(chunks):
            assert phone.upload(session_id, number, chunk).status_code == 201
        _chunk_worker(settings, redis_conn, models)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            name == "transcript" and data["chunks_heard"] == len(chunks) for name, data in events
        ):
            time.sleep(0.1)
        assert phone.end(session_id).status_code == 202
        drain_queues(settings, redis_conn, models)
        follower.join(timeout=60)
        assert not follower.is_alive(), "the stream did not end with the session"
        provisional = http.get(
            f"/sessions/{session_id}/transcript/provisional", headers=user.headers
        ).json()
    told = [data for name, data in events if name == "transcript"]
    assert told and told[-1]["chunks_heard"] == len(chunks), events
    assert [s for data in told for s in data["segments"]] == provisional["segments"]
    assert provisional["segments"], "the test cannot fail: nothing was heard"
    assert statuses(events)[-1]["status"] == "ready_for_claiming"
    ended = next(i for i, (name, data) in enumerate(events) if data.get("status") == "processing")
    assert [name for name, _ in events[:ended]].count("transcript") >= 1  # while recording


def test_the_cut_falls_in_a_pause_near_the_end_and_depends_on_the_chunk_alone():
    audio = decode_audio(CONVERSATION)
    chunk = Audio(audio.samples[: 16_000 * 12])
    cut = cut_point(chunk)
    assert chunk.duration - 8.0 <= cut <= chunk.duration
    window = chunk.slice(cut - 0.1, cut + 0.1).samples
    assert float(np.sqrt(np.mean(np.square(window)))) < 0.05  # quiet where it cuts
    assert cut_point(Audio(chunk.samples.copy())) == cut
    silent = Audio(np.zeros(16_000 * 10, np.float32))
    assert 2.0 <= cut_point(silent) <= 10.0


@pytest.mark.slow
def test_a_stretch_is_recognised_with_the_seconds_after_its_cut_and_keeps_only_its_own_words(
    models,
):
    """The recogniser hears a stretch with its lookahead (the chunk's audio after the cut,
    which the next stretch carries) as context only: no word after the cut is kept, and the
    lookahead's words are dropped (the next stretch has them)."""
    audio = decode_audio(CONVERSATION)
    chunk = Audio(audio.samples[: 16_000 * 20])
    stretch = stretch_of(None, chunk, final=False)
    cut = cut_point(chunk)
    assert stretch.lookahead.duration == pytest.approx(min(LOOKAHEAD_S, chunk.duration - cut))
    np.testing.assert_array_equal(
        stretch.lookahead.samples, chunk.slice(cut, cut + LOOKAHEAD_S).samples
    )
    heard = [w for s in recognise(stretch, models.transcriber) for w in s.words]
    assert heard and all(w.end <= stretch.audio.duration + 1e-6 for w in heard)
    looked = Audio(np.concatenate([stretch.audio.samples, stretch.lookahead.samples]))
    with_lookahead = [w for s in transcribe(looked, models.transcriber) for w in s.words]
    after = [w for w in with_lookahead if (w.start + w.end) / 2 >= stretch.audio.duration]
    assert after, "the test cannot fail: the lookahead holds no word"
    assert len(heard) == len(with_lookahead) - len(after)
    coda = coda_of(chunk)
    assert coda is not None and coda.lookahead.duration == 0.0  # the chunk's end: none


@pytest.mark.slow
def test_the_recogniser_stops_once_past_the_cut_and_keeps_the_same_words(models, monkeypatch):
    """Whisper encodes another 30 s window for whatever its last one left (often a sliver
    of the lookahead, whose words are dropped anyway): told the cut (``until``), it stops
    once it has heard past it — fewer encoder passes, the same words kept."""
    whisper = models.transcriber.whisper
    passes = {"n": 0}
    encode = whisper.encode

    def counted(features):
        passes["n"] += 1
        return encode(features)

    monkeypatch.setattr(whisper, "encode", counted)
    chunks = [decode_audio(p) for p in SAMPLES[:2]]
    stretch = stretch_of(chunks[0], chunks[1], final=False)
    assert stretch.lookahead.duration > 0
    looked = Audio(np.concatenate([stretch.audio.samples, stretch.lookahead.samples]))

    def kept(segments):
        cut = stretch.audio.duration
        return [
            (w.text, w.start, w.end) for s in segments for w in s.words if w.start + w.end < 2 * cut
        ]

    whole = kept(models.transcriber.transcribe(looked, lambda _: None, None))
    whole_passes, passes["n"] = passes["n"], 0
    stopped = kept(transcribe(looked, models.transcriber, until=stretch.audio.duration))
    assert whole and stopped == whole
    assert passes["n"] < whole_passes
    passes["n"] = 0
    assert [
        (w.text, w.start, w.end) for s in recognise(stretch, models.transcriber) for w in s.words
    ] == [(t, s, min(e, stretch.audio.duration)) for t, s, e in whole]
    assert passes["n"] < whole_passes  # the product's hearing of a stretch stops too


def test_a_stretch_brings_the_seconds_before_it_as_the_diarizers_lead_in():
    audio = decode_audio(CONVERSATION)
    first, second = Audio(audio.samples[: 16_000 * 20]), Audio(audio.samples[16_000 * 20 :])
    assert stretch_of(None, first, final=False).lead_in is None  # the session's start
    stretch = stretch_of(first, second, final=True)
    cut = cut_point(first)
    assert stretch.lead_in is not None
    assert stretch.lead_in.duration == pytest.approx(SPAN_LEAD_IN_S, abs=1e-4)
    # just before the carried tail, which the stretch's audio begins with
    np.testing.assert_array_equal(stretch.lead_in.samples, first.slice(cut - 7.5, cut).samples)
    tail = first.slice(cut, first.duration).samples
    np.testing.assert_array_equal(stretch.audio.samples[: len(tail)], tail)


def _chunk_worker(settings: Settings, redis_conn, models) -> None:
    """Run the chunk jobs queued so far (what a worker does while people talk)."""
    from tests.factories import burst_worker

    with burst_worker(settings, redis_conn, models, webhooks=False) as worker:
        worker.queues = [chunk_queue(redis_conn, settings)]
        worker.work(burst=True)


@pytest.mark.slow
def test_a_live_session_is_heard_while_recording_and_finished_from_its_hearings(
    client, make_user, settings, redis_conn, models, session_factory, tmp_path, monkeypatch
):
    user = make_user()
    phone = Phone(client, user.headers)
    _, session_id = phone.session()
    chunks = wav_chunks(CONVERSATION, tmp_path, seconds=10)
    # out of order: chunk 1 first waits for chunk 0's tail
    assert phone.upload(session_id, 1, chunks[1]).status_code == 201
    _chunk_worker(settings, redis_conn, models)
    status = client.get(f"/sessions/{session_id}/status", headers=user.headers).json()
    assert (status["chunks_uploaded"], status["chunks_heard"]) == (1, 0)
    provisional = f"/sessions/{session_id}/transcript/provisional"
    assert client.get(provisional, headers=user.headers).json() == {
        "chunks_heard": 0,
        "segments": [],
    }
    assert phone.upload(session_id, 0, chunks[0]).status_code == 201
    for number in range(2, len(chunks)):
        assert phone.upload(session_id, number, chunks[number]).status_code == 201
    _chunk_worker(settings, redis_conn, models)
    status = client.get(f"/sessions/{session_id}/status", headers=user.headers).json()
    assert status["status"] == "recording"
    assert status["chunks_uploaded"] == status["chunks_heard"] == len(chunks)
    # while recording, what was heard so far: in order, in session seconds, no speakers
    so_far = client.get(provisional, headers=user.headers).json()
    assert so_far["chunks_heard"] == len(chunks)
    starts = [s["start"] for s in so_far["segments"]]
    assert starts == sorted(starts) and starts[0] >= 0.0
    assert 20.0 < so_far["segments"][-1]["end"] <= 30.1  # placed across the whole session
    heard_text = " ".join(s["text"] for s in so_far["segments"])
    reference = _reference(CONVERSATION.with_suffix(".stm"))
    assert _errors(reference, heard_text) < len(_words(reference)) / 2, heard_text
    outsider = make_user()
    assert client.get(provisional, headers=outsider.headers).status_code == 404
    # a duplicate delivery changes nothing
    with session_factory() as db:
        before = {r.chunk_number: r.heard_at for r in db.scalars(select(ChunkHearingRow))}
    chunk_queue(redis_conn, settings).enqueue(
        "processor.hear_chunk", session_id, 0, job_id="replayed"
    )
    _chunk_worker(settings, redis_conn, models)
    with session_factory() as db:
        after = {r.chunk_number: r.heard_at for r in db.scalars(select(ChunkHearingRow))}
    assert after == before

    assert phone.end(session_id, num_speakers=2).status_code == 202
    drain_queues(settings, redis_conn, models)
    status = client.get(f"/sessions/{session_id}/status", headers=user.headers).json()
    assert status["status"] == "ready_for_claiming", status
    with session_factory() as db:
        # the last chunk, heard while recording to its cut, is not heard again at the finish:
        # only its coda is, and the coda's words are the transcript's last
        assert {r.chunk_number: r.heard_at for r in db.scalars(select(ChunkHearingRow))} == after
        segments = list(db.scalars(select(Segment).order_by(Segment.start_s)))
        text = " ".join(s.text for s in segments)
    last_chunk = decode_audio(chunks[-1])
    coda = coda_of(last_chunk)
    assert coda is not None, "the test cannot fail: the last chunk ends in its cut's pause"
    session_s = sum(decode_audio(c).duration for c in chunks)
    coda_start = session_s - last_chunk.duration + coda.start
    assert segments[-1].end_s > coda_start + 0.5, (coda_start, segments[-1].end_s, text)
    speakers = client.get(f"/sessions/{session_id}/speakers", headers=user.headers).json()
    assert len(speakers["speakers"]) == 2

    # processed again with a speaker count: no chunk heard again, the words kept, the claim
    # on a speaker still in its place kept
    first = speakers["speakers"][0]
    claimed = client.post(
        f"/sessions/{session_id}/claim",
        json={"speaker_id": first["id"], "claim_type": "self"},
        headers=user.headers,
    )
    assert claimed.status_code == 200, claimed.text
    with session_factory() as db:
        heard_before = {r.chunk_number: r.heard_at for r in db.scalars(select(ChunkHearingRow))}
        voices_before = {
            (r.heard_from, tuple(r.embedding)) for r in db.scalars(select(SpeakerVoiceRow))
        }
    assert voices_before and all(source for source, _ in voices_before)
    embedded = []
    campplus = voiceprints._campplus_each

    def counted(*args):
        embedded.append(args)
        return campplus(*args)

    monkeypatch.setattr(voiceprints, "_campplus_each", counted)
    again = client.post(
        f"/sessions/{session_id}/reprocess", json={"num_speakers": 2}, headers=user.headers
    )
    assert again.status_code == 202 and again.json()["status"] == "processing", again.text
    drain_queues(settings, redis_conn, models)
    status = client.get(f"/sessions/{session_id}/status", headers=user.headers).json()
    assert status["status"] in ("ready_for_claiming", "completed"), status
    with session_factory() as db:
        heard_after = {r.chunk_number: r.heard_at for r in db.scalars(select(ChunkHearingRow))}
        text_again = " ".join(s.text for s in db.scalars(select(Segment).order_by(Segment.start_s)))
        voices_after = {
            (r.heard_from, tuple(r.embedding)) for r in db.scalars(select(SpeakerVoiceRow))
        }
    assert heard_after == heard_before  # nothing heard again
    assert text_again == text
    # the same speakers' speech: their voices kept, none embedded again
    assert voices_after == voices_before and not embedded
    after = client.get(f"/sessions/{session_id}/speakers", headers=user.headers).json()
    kept = [s for s in after["speakers"] if s["claimed_by"] == str(user.id)]
    assert [s["speaker_label"] for s in kept] == [first["speaker_label"]]
    # one speaker only: the claimed speaker is no longer in its own place, or is (then kept)
    again = client.post(
        f"/sessions/{session_id}/reprocess", json={"num_speakers": 1}, headers=user.headers
    )
    assert again.status_code == 202
    drain_queues(settings, redis_conn, models)
    status = client.get(f"/sessions/{session_id}/status", headers=user.headers).json()
    one = client.get(f"/sessions/{session_id}/speakers", headers=user.headers).json()["speakers"]
    assert len(one) == 1
    released = [w for w in status["warnings"] if "was released" in w]
    assert bool(released) == (one[0]["claimed_by"] is None), (status, one)

    # against what was said, the batch path on the same chunks does no better (10 s chunks
    # here: three times the cuts a phone's 30 s chunks make)
    batch = settings.model_copy(update={"live_processing": False})
    _, batch_session = phone.session()
    for number, path in enumerate(chunks):
        assert phone.upload(batch_session, number, path).status_code == 201
    redis_conn.delete(chunk_queue(redis_conn, settings).key)
    assert phone.end(batch_session, num_speakers=2).status_code == 202
    drain_queues(batch, redis_conn, models)
    with session_factory() as db:
        rows = db.scalars(
            select(Segment)
            .where(Segment.session_id == uuid.UUID(batch_session))
            .order_by(Segment.start_s)
        )
        batch_text = " ".join(s.text for s in rows)
    reference = " ".join(_words(_reference(CONVERSATION.with_suffix(".stm"))))
    live_wer = jiwer.wer(reference, " ".join(_words(text)))
    batch_wer = jiwer.wer(reference, " ".join(_words(batch_text)))
    assert live_wer <= batch_wer + 0.1, (live_wer, batch_wer)


@pytest.mark.slow
def test_a_corrupt_chunk_fails_only_its_own_hearing_then_the_session_says_which(
    client, make_user, settings, redis_conn, models, session_factory, tmp_path
):
    user = make_user()
    phone = Phone(client, user.headers)
    _, session_id = phone.session()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64))
    assert phone.upload(session_id, 0, SAMPLES[2]).status_code == 201
    assert phone.upload(session_id, 1, broken).status_code == 201
    assert phone.upload(session_id, 2, SAMPLES[2]).status_code == 201
    _chunk_worker(settings, redis_conn, models)
    with session_factory() as db:
        rows = {r.chunk_number: r for r in db.scalars(select(ChunkHearingRow))}
    assert rows[1].error and rows[0].error is None and rows[2].error is None

    assert phone.end(session_id).status_code == 202
    drain_queues(settings, redis_conn, models)
    status = client.get(f"/sessions/{session_id}/status", headers=user.headers).json()
    assert status["status"] == "failed"
    assert "chunk 1 could not be decoded" in status["error_message"]

    # SKIP_BAD_CHUNKS: the same chunks give a session without chunk 1, saying so
    skipping = settings.model_copy(update={"skip_bad_chunks": True})
    again = client.post(f"/sessions/{session_id}/reprocess", headers=user.headers)
    assert again.status_code == 202, again.text
    drain_queues(skipping, redis_conn, models)
    status = client.get(f"/sessions/{session_id}/status", headers=user.headers).json()
    assert status["status"] == "ready_for_claiming", status
    assert "chunk 1 skipped: could not be decoded" in status["warnings"]
    with session_factory() as db:
        spans = [(s.start_s, s.end_s) for s in db.scalars(select(Segment))]
    chunk = decode_audio(SAMPLES[2])
    # chunk 2's words come right after chunk 0's, on one timeline without chunk 1
    assert chunk.duration + 1.0 < max(end for _, end in spans) <= 2 * chunk.duration
    # and chunk 0's tail, which chunk 1's stretch would have carried, is heard (its coda)
    tail = (cut_point(chunk) + 0.5, chunk.duration - 0.5)
    assert any(start < tail[1] and end > tail[0] for start, end in spans), (tail, spans)


def test_the_reconciler_enqueues_chunks_a_flushed_redis_lost(
    client, make_user, settings, redis_conn, session_factory
):
    user = make_user()
    phone = Phone(client, user.headers)
    _, session_id = phone.session()
    for number in (0, 1, 3):  # 3 waits for 2, which never came
        assert phone.upload(session_id, number, SAMPLES[2]).status_code == 201
    redis_conn.flushdb()
    with session_factory() as db:  # uploaded long enough ago not to be on their way
        for chunk in db.scalars(select(AudioChunk)):
            chunk.created_at = chunk.created_at.replace(year=2020)
        db.commit()
    report = reconcile(session_factory, redis_conn, settings)
    assert sorted(n for _, n in report.rehearing) == [0, 1]
    queued = chunk_queue(redis_conn, settings).job_ids
    assert sorted(queued) == sorted(f"hear-{session_id}-{n}" for n in (0, 1))
    # once enqueued, a second pass adds nothing
    assert reconcile(session_factory, redis_conn, settings).rehearing == []


def test_chunk_audio_keeps_the_last_few_decoded(settings, tmp_path):
    from storage import create_storage

    storage = create_storage(settings)
    with Path(SAMPLES[2]).open("rb") as stream:
        storage.put("a/x.wav", stream, "audio/wav")
    audio = ChunkAudio(storage, keep=1)
    first = audio.get("a/x.wav")
    assert audio.get("a/x.wav") is first


@pytest.mark.slow
def test_a_chunk_being_heard_is_left_to_its_job_and_the_finish_waits_instead_of_redoing_it(
    client, make_user, settings, models, session_factory
):
    """Two jobs on one chunk (a chunk job still running when the finish reaches its chunk):
    one hears it, the other does not hear it again — a chunk job leaves it (busy), the finish
    waits for the holder and then finds it heard."""
    import threading

    from processing.hearings import Ears, Outcome, hear_chunk, hearer_of
    from storage import create_storage

    user = make_user()
    phone = Phone(client, user.headers)
    _, session_id = phone.session()
    assert phone.upload(session_id, 0, SAMPLES[2]).status_code == 201
    hearer = hearer_of(settings, models.singlish)
    ears = Ears(models.transcriber, models.singlish, models.diarizer, hearer)
    # the first job hears until the test lets it finish, however fast the recogniser is
    release = threading.Event()
    held = Ears(_Held(models.transcriber, release), models.singlish, models.diarizer, hearer)
    storage = create_storage(settings)
    sid = uuid.UUID(session_id)
    outcomes: list[Outcome] = []
    first = threading.Thread(
        target=lambda: outcomes.append(hear_chunk(session_factory, storage, held, sid, 0))
    )
    first.start()
    deadline = 50
    while deadline and not _locked(session_factory):
        time.sleep(0.1)
        deadline -= 1
    assert _locked(session_factory), "the first job never took the chunk"
    assert hear_chunk(session_factory, storage, ears, sid, 0) is Outcome.BUSY
    threading.Timer(1.0, release.set).start()  # while the finish waits for the lock
    waited = hear_chunk(session_factory, storage, ears, sid, 0, wait=True)
    first.join()
    assert release.is_set() and outcomes == [Outcome.HEARD] and waited is Outcome.VALID


@pytest.mark.slow
def test_a_hearing_by_another_hearer_is_heard_again_and_the_lookahead_is_part_of_the_hearer(
    client, make_user, settings, models, session_factory, monkeypatch
):
    """A stored hearing is reused only when the same hearer would make it: a hearer whose
    decoding differs (here: another stretch lookahead) hears the chunk again."""
    import processing.hearings as hearings
    from processing.hearings import Ears, Outcome, hear_chunk, hearer_of
    from storage import create_storage

    user = make_user()
    phone = Phone(client, user.headers)
    _, session_id = phone.session()
    assert phone.upload(session_id, 0, SAMPLES[2]).status_code == 201
    storage, sid = create_storage(settings), uuid.UUID(session_id)
    hearer = hearer_of(settings, models.singlish)
    ears = Ears(models.transcriber, models.singlish, models.diarizer, hearer)
    first = hear_chunk(session_factory, storage, ears, sid, 0)
    assert first in (Outcome.HEARD, Outcome.VALID)  # the upload's own chunk job may be first
    assert hear_chunk(session_factory, storage, ears, sid, 0) is Outcome.VALID
    monkeypatch.setattr(hearings, "LOOKAHEAD_S", LOOKAHEAD_S + 1.0)
    other = hearer_of(settings, models.singlish)
    assert other != hearer
    again = Ears(models.transcriber, models.singlish, models.diarizer, other)
    assert hear_chunk(session_factory, storage, again, sid, 0) is Outcome.HEARD


class _Held:
    """A recogniser that starts only once ``release`` is set."""

    def __init__(self, transcriber, release) -> None:
        self.transcriber, self.release = transcriber, release

    def transcribe(self, audio, on_progress, until=None):
        assert self.release.wait(60), "never released"
        return self.transcriber.transcribe(audio, on_progress, until)


def _locked(session_factory) -> bool:
    """Whether some job holds a chunk's advisory lock."""
    from sqlalchemy import text

    with session_factory() as db:
        return bool(db.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")))
