"""The same audio and settings give the same result, every speaker shown can be played and
claimed, and a session in which nobody was heard ends in a state the app can finish.

Real models (the session's ``models``), real speech cut from ../shared/corpus; the session
tests go through the real API, Redis, RQ worker and Postgres."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import lifecycle
import processor
from config import Settings
from processing import rows
from processing.clips import Clips, store_clips
from processing.progress import Unwatched
from queueing.webhooks import webhook_queue
from services.analysis import analyse
from services.audio import decode_audio
from services.diarization import MIN_SPEAKER_S, diarize, without_minor_speakers
from services.domain import Audio, SpeakerHints, SpeakerTurn, Utterance, Word
from services.transcription import transcribe
from storage import create_storage
from tests.factories import Phone, drain_queues
from tests.paths import CORPUS

ASR_EN = CORPUS / "asr_en"
# (file under ASR_EN, start s, length s): a 0.2 s chunk as the probe sent, short speech, 1.5 s
CHUNKS = [
    ("speechbrain_harvard/spk1_snt1.wav", 1.0, 0.2),
    ("speechbrain_harvard/spk2_snt3.wav", 0.8, 0.3),
    ("speechbrain_harvard/spk1_snt2.wav", 0.5, 0.6),
    ("speechbrain_harvard/spk2_snt1.wav", 0.4, 1.5),
]
# 0.3 s chunks that faster-whisper's default temperature fallback (sampling) decoded
# differently from run to run: 3 and 4 distinct transcripts in 6 runs, once "Walao, cheebai,
# lanjiao." (the hotword prompt) for the second.
SAMPLED_BEFORE = [
    ("speechbrain_harvard/singlemic_example2_16k.wav", 0.75055, 0.3),
    ("pocketsphinx_librivox/sense_and_sensibility_01_austen_64kb-0870.wav", 0.3944, 0.3),
]
RUNS = 3


def _chunk(name: str, start: float, seconds: float) -> Audio:
    audio = decode_audio((ASR_EN / name).read_bytes())
    return Audio(np.array(audio.slice(start, start + seconds).samples))


def _name(chunk: tuple[str, float, float]) -> str:
    return "{}@{}+{}".format(*chunk)


def _result(heard: rows.Heard, clips: Clips) -> tuple[Any, ...]:
    """Everything the app is shown of one processing: speakers, transcript, clips."""
    analysis = heard.analysis
    speakers = tuple(
        (s.label, s.talk_time_s, s.segment_count, tuple(s.word_counts.items()), s.dominant_emotion)
        for s in analysis.speakers
    )
    segments = tuple(
        (s.speaker, s.start, s.end, s.text, s.corrected_text, s.emotion.label)
        for s in analysis.segments
    )
    return speakers, segments, tuple(sorted(clips.samples.items()))


@pytest.fixture(scope="module")
def short_chunks(models, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    """Each chunk of CHUNKS processed RUNS times (same session id, so same clip keys)."""
    settings = Settings(environment="test", data_dir=tmp_path_factory.mktemp("determinism"))
    storage = create_storage(settings)
    done: dict[str, list[Any]] = {}
    for name, start, seconds in CHUNKS:
        audio, session_id = _chunk(name, start, seconds), uuid.uuid4()
        runs = []
        for _ in range(RUNS):
            heard = processor.process_audio(audio, SpeakerHints(), models, Unwatched())
            runs.append((heard, store_clips(audio, heard, session_id, storage, settings)))
        done[_name((name, start, seconds))] = runs
    return done


def test_the_same_chunk_gives_the_same_result_every_time(short_chunks) -> None:
    for chunk, runs in short_chunks.items():
        results = [_result(heard, clips) for heard, clips in runs]
        assert results == [results[0]] * RUNS, chunk


@pytest.mark.parametrize("chunk", SAMPLED_BEFORE, ids=lambda c: Path(c[0]).stem)
def test_the_same_chunk_gives_the_same_transcript_every_time(models, chunk) -> None:
    audio = _chunk(*chunk)
    transcripts = [transcribe(audio, models.transcriber) for _ in range(5)]
    assert transcripts == [transcripts[0]] * 5


def test_every_speaker_shown_has_talk_time_and_a_sample_clip(short_chunks) -> None:
    for chunk, runs in short_chunks.items():
        heard, clips = runs[0]
        labels = {s.label for s in heard.analysis.speakers}
        for speaker in heard.analysis.speakers:
            assert speaker.talk_time_s >= MIN_SPEAKER_S, chunk
            assert speaker.label in clips.samples, chunk
        assert {s.speaker for s in heard.analysis.segments} <= labels, chunk
    # the 1.5 s of speech is long enough to be somebody, the 0.2 s is not
    assert [s.label for s in short_chunks[_name(CHUNKS[3])][0][0].analysis.speakers] == [
        "SPEAKER_00"
    ]
    assert short_chunks[_name(CHUNKS[0])][0][0].analysis.speakers == ()


def test_a_speaker_with_too_little_speech_is_not_returned() -> None:
    turns = (
        SpeakerTurn(0.0, 4.0, "SPEAKER_00"),
        SpeakerTurn(4.0, 4.4, "SPEAKER_01"),  # 0.4 s in all: a laugh, a cough
        SpeakerTurn(4.4, 6.0, "SPEAKER_00"),
    )
    assert without_minor_speakers(turns, MIN_SPEAKER_S) == (turns[0], turns[2])
    assert without_minor_speakers(turns[1:2], MIN_SPEAKER_S) == ()


def test_short_real_speech_gives_no_turns(models) -> None:
    assert diarize(_chunk(*CHUNKS[2]), models.diarizer) == ()


def test_words_nobody_was_heard_saying_make_no_speaker(models) -> None:
    """With no turns, assignment gives the words a placeholder speaker; the analysis shows
    neither that speaker (no voice to play) nor their words (nobody to credit)."""
    said = Utterance("SPEAKER_00", 0.0, 0.3, (Word(0.0, 0.3, " Walao"),))
    analysis = analyse([said], (), models.singlish.corrections, models.emotion_classifier)
    assert analysis.speakers == () and analysis.segments == () and analysis.occurrences == ()


# --- through the worker ----------------------------------------------------------------


def _wav(audio: Audio) -> bytes:
    out = io.BytesIO()
    sf.write(out, audio.samples, audio.sample_rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


@pytest.mark.parametrize("blip", [None, CHUNKS[0]], ids=["2s-of-silence", "a-0.2s-blip"])
def test_a_session_with_no_speech_is_completed_with_a_warning(
    client,
    make_user,
    settings,
    redis_conn,
    models,
    tmp_path,
    monkeypatch,
    blip: tuple[str, float, float] | None,
) -> None:
    monkeypatch.setattr(settings, "webhook_allow_private_networks", True)  # queued, never sent
    audio = _chunk(*blip) if blip else Audio(np.zeros(32_000, dtype=np.float32))
    chunk = tmp_path / "chunk.wav"
    chunk.write_bytes(_wav(audio))
    user = make_user()
    session_id = Phone(client, user.headers).record([chunk], webhook_url="http://127.0.0.1:9/hook")

    drain_queues(settings, redis_conn, models, webhooks=False)

    status = client.get(f"/sessions/{session_id}/status", headers=user.headers).json()
    assert status["status"] == "completed", status
    assert status["progress"] == 100 and status["error_message"] is None
    assert lifecycle.NO_SPEECH in status["warnings"]
    assert rows.NO_WORDS_WARNING not in status["warnings"]
    speakers = client.get(f"/sessions/{session_id}/speakers", headers=user.headers).json()
    assert speakers == {"speakers": []}
    transcript = client.get(f"/sessions/{session_id}/transcript", headers=user.headers).json()
    assert transcript == {"segments": []}
    # the webhook says what was written
    (event,) = webhook_queue(redis_conn, settings).get_jobs()
    assert json.loads(event.args[1]) == {
        "event": "session.completed",
        "session_id": session_id,
        "status": "completed",
        "error_message": None,
    }
