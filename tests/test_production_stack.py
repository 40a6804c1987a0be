"""The production stack's transformers paths executed on locally built models with random
weights (bench.random_models; nothing downloaded): Whisper through transformers with word
timestamps, a j-hartmann-style RoBERTa text emotion classifier, and the speech emotion
classifier (a superb-er-style wav2vec2) fused with it; then all of them, with pyannote
community-1, loaded by ``load_engines`` from the settings an operator would write and run
through a real RQ worker on corpus speech.

Random weights say nothing true; the tests judge the plumbing (loading, label mapping,
fusion arithmetic, shapes, the job finishing with well-formed results)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.random_models import (
    build_speech_emotion,
    build_text_emotion,
    build_whisper,
)
from config import Settings
from processing.progress import Unwatched
from processor import Engines, load_engines, process_audio
from services.domain import EMOTION_LABELS, Audio, Emotion, SpeakerHints
from services.emotion import PipelineEmotionClassifier, classify_emotions, load_emotion_classifier
from services.speech_emotion import (
    SpeechEmotionError,
    fuse,
    hear_emotions,
    load_speech_emotion_classifier,
)
from tests.factories import Phone, drain_queues
from tests.paths import CORPUS

SAMPLE = CORPUS / "diarization/pyannote_sample/sample.wav"  # two speakers, 30 s, 16 kHz


def _speech(seconds: float) -> Audio:
    samples, rate = sf.read(SAMPLE, dtype="float32")
    assert rate == 16_000
    return Audio(samples[: int(seconds * rate)])


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("production")
    return {
        "whisper": build_whisper(root / "whisper"),
        "text_emotion": build_text_emotion(root / "text-emotion"),
        "speech_emotion": build_speech_emotion(root / "speech-emotion"),
    }


def _settings(tmp_path: Path, **fields: object) -> Settings:
    return Settings(environment="test", data_dir=tmp_path, device="cpu", **fields)  # type: ignore[arg-type]


# --- fusion (pure) -----------------------------------------------------------------------

HEARD = frozenset({"neutral", "joy", "anger", "sadness"})


def _emotion(**scores: float) -> Emotion:
    row = {label: scores.get(label, 0.0) for label in EMOTION_LABELS}
    best = max(row, key=row.__getitem__)
    return Emotion(best, row[best], row)


def _row(**scores: float) -> np.ndarray:
    return np.array([scores.get(label, 0.0) for label in EMOTION_LABELS])


def test_fusion_redivides_only_the_mass_of_the_labels_the_voice_can_hear() -> None:
    text = _emotion(neutral=0.6, fear=0.2, joy=0.2)
    angry_voice = _row(anger=1.0)

    fused = fuse(text, angry_voice, HEARD, speech_weight=0.5)

    assert sum(fused.scores.values()) == pytest.approx(1.0)
    assert fused.scores["fear"] == pytest.approx(0.2)  # the voice cannot hear fear
    assert fused.scores["anger"] == pytest.approx(0.5 * 0.8)
    assert fused.scores["neutral"] == pytest.approx(0.5 * 0.6)
    assert fused.label == "anger"
    assert fuse(text, angry_voice, HEARD, speech_weight=0.0).scores == pytest.approx(text.scores)
    assert fuse(text, angry_voice, HEARD, speech_weight=1.0).scores["neutral"] == 0.0


# --- each loader on its own ----------------------------------------------------------------


def test_roberta_text_emotion_with_the_seven_labels(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    settings = _settings(
        tmp_path, emotion_backend="transformers", emotion_model=str(model_dirs["text_emotion"])
    )
    classifier = load_emotion_classifier(settings)
    assert isinstance(classifier, PipelineEmotionClassifier)
    assert classifier.pipeline.model.config.model_type == "roberta"

    emotions = classify_emotions(["Wah, so happy lah!", "", "walao eh"], classifier)

    assert [tuple(e.scores) for e in emotions] == [EMOTION_LABELS] * 3
    assert all(sum(e.scores.values()) == pytest.approx(1.0) for e in emotions)


def test_speech_emotion_hears_utterances_and_fuses(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    settings = _settings(tmp_path, speech_emotion_model=str(model_dirs["speech_emotion"]))
    classifier = load_speech_emotion_classifier(settings)
    assert classifier is not None and classifier.heard_labels == HEARD
    audio = _speech(12.0)
    clips = [audio.slice(0.0, 3.0), audio.slice(3.0, 3.2), audio.slice(3.2, 12.0)]
    text = [_emotion(neutral=0.7, surprise=0.3)] * 3

    fused = hear_emotions(text, clips, classifier)

    assert fused[1] == text[1]  # 0.2 s: too short to judge, the text's emotion stays
    for emotion in (fused[0], fused[2]):
        assert emotion != text[0]
        assert emotion.scores["surprise"] == pytest.approx(0.3)
        assert sum(emotion.scores.values()) == pytest.approx(1.0)
    assert load_speech_emotion_classifier(_settings(tmp_path)) is None  # off by default


def test_speech_emotion_refuses_labels_it_cannot_map(tmp_path: Path) -> None:
    model = build_speech_emotion(tmp_path / "odd", id2label={0: "neu", 1: "bored"})
    with pytest.raises(SpeechEmotionError, match="bored"):
        load_speech_emotion_classifier(_settings(tmp_path, speech_emotion_model=str(model)))


# --- the whole production stack -------------------------------------------------------------


@pytest.fixture(scope="module")
def production_settings(
    model_dirs: dict[str, Path], pyannote_dirs: dict[str, Path], tmp_path_factory
) -> Settings:
    """What an operator sets for the GPU worker (docs/DEPLOYMENT.md), on local copies."""
    return _settings(
        tmp_path_factory.mktemp("data"),
        diarization_backend="pyannote",
        diarization_model=str(pyannote_dirs["community-1"]),
        asr_backend="transformers",
        asr_model=str(model_dirs["whisper"]),
        emotion_backend="transformers",
        emotion_model=str(model_dirs["text_emotion"]),
        speech_emotion_model=str(model_dirs["speech_emotion"]),
        # the hotwords and the second listen are faster-whisper's
        singlish_hotwords=False,
        singlish_verify=False,
    )


@pytest.fixture(scope="module")
def production_engines(production_settings: Settings) -> Engines:
    return load_engines(production_settings)


def test_production_pyannote_stack_hears_speakers_words_voices_and_tone(
    production_engines: Engines,
) -> None:
    assert production_engines.speech_emotion_classifier is not None

    heard = process_audio(
        _speech(10.0), SpeakerHints(max_speakers=2), production_engines, Unwatched()
    )

    speakers = {t.speaker for t in heard.turns}
    assert 1 <= len(speakers) <= 2
    assert {v.speaker for v in heard.voices} <= speakers and heard.voices
    assert heard.analysis.segments, "the transformers Whisper gave no words"
    for segment in heard.analysis.segments:
        assert segment.speaker in speakers
        assert tuple(segment.emotion.scores) == EMOTION_LABELS
        assert sum(segment.emotion.scores.values()) == pytest.approx(1.0)


def test_production_pyannote_stack_through_the_worker(
    production_engines: Engines, client, make_user, settings, redis_conn, tmp_path: Path
) -> None:
    chunk = tmp_path / "chunk.wav"
    sf.write(chunk, _speech(10.0).samples, 16_000)
    user = make_user()
    session_id = Phone(client, user.headers).record([chunk], num_speakers=1)

    drain_queues(settings, redis_conn, production_engines)

    status = client.get(f"/sessions/{session_id}/status", headers=user.headers).json()
    assert status["status"] == "ready_for_claiming", status
    speakers = client.get(f"/sessions/{session_id}/speakers", headers=user.headers).json()
    assert [s["speaker_label"] for s in speakers["speakers"]] == ["SPEAKER_00"]
    segments = client.get(f"/sessions/{session_id}/transcript", headers=user.headers).json()
    assert segments["segments"]
    for segment in segments["segments"]:
        assert abs(sum(segment["emotion_scores"].values()) - 1) < 1e-3
