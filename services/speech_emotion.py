"""How things are said: an emotion per utterance from its audio, fused with the text's.

Text alone misses tone: "can lah" said through gritted teeth reads neutral. With
``SPEECH_EMOTION_MODEL`` set (a hub id or local directory of a transformers
audio-classification model: wav2vec2, HuBERT, WavLM..., e.g. the
``superb/wav2vec2-base-superb-er`` family), each utterance's audio is classified too and the
two distributions are fused (:func:`fuse`). Off by default: on 2 CPU cores a base-size
wav2vec2 costs about as much as the rest of the pipeline; on a GPU worker it is cheap.

Label mapping. A speech model's labels are mapped onto our seven by name
(:data:`LABEL_MAP`: IEMOCAP's ``neu/hap/ang/sad`` as the superb models write them, the full
words, RAVDESS/CREMA-D's ``happy``, ``fearful``, ``disgusted``, ``surprised``, ``calm`` (as
neutral), ``excited`` (as joy)). A model with a label that maps nowhere is refused at load.

Fusion. The speech model may know only some of the seven (superb-er: four). It only
re-divides the probability mass the text gave to the labels it knows; the mass of labels it
cannot hear (disgust, fear, surprise for superb-er) stays as the text said. Within the
known labels, ``speech_weight`` (SPEECH_EMOTION_WEIGHT, default 0.5: an even say; no
labelled emotional speech of this product's users exists here to tune it on) of that mass
follows the speech model, the rest the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from config import Settings
from services.device import resolve_device
from services.domain import EMOTION_LABELS, SAMPLE_RATE, Audio, Emotion

# A speech model's label (lower case) -> ours.
LABEL_MAP: dict[str, str] = {
    "neu": "neutral",
    "neutral": "neutral",
    "calm": "neutral",
    "hap": "joy",
    "happy": "joy",
    "happiness": "joy",
    "joy": "joy",
    "excited": "joy",
    "ang": "anger",
    "angry": "anger",
    "anger": "anger",
    "sad": "sadness",
    "sadness": "sadness",
    "fear": "fear",
    "fearful": "fear",
    "disgust": "disgust",
    "disgusted": "disgust",
    "surprise": "surprise",
    "surprised": "surprise",
}
# Shorter utterances keep their text emotion (too little voice to judge, and below ~25 ms
# a wav2vec2 feature encoder has no frame at all); longer ones are judged on their middle.
MIN_CLIP_S = 0.5
MAX_CLIP_S = 20.0
BATCH_SIZE = 8

Probabilities = npt.NDArray[np.float64]  # (n_clips, 7) in EMOTION_LABELS order


class SpeechEmotionError(RuntimeError):
    """The speech emotion model could not be loaded or speaks labels we cannot map."""


@dataclass(frozen=True)
class SpeechEmotionClassifier:
    """A transformers audio-classification pipeline, its labels mapped onto ours, and how
    much say it has against the text (0-1)."""

    pipeline: Any
    speech_weight: float

    @property
    def heard_labels(self) -> frozenset[str]:
        """Which of our seven labels the model can hear."""
        labels = self.pipeline.model.config.id2label.values()
        return frozenset(LABEL_MAP[str(label).lower()] for label in labels)

    def predict_proba(self, clips: Sequence[Audio]) -> Probabilities:
        """Shape (len(clips), 7), EMOTION_LABELS order: each model label's probability on
        its mapped label, rows renormalised to 1 (zero outside ``heard_labels``)."""
        inputs = [{"raw": clip.samples, "sampling_rate": clip.sample_rate} for clip in clips]
        outputs = self.pipeline(inputs, batch_size=BATCH_SIZE, top_k=None)
        rows = np.zeros((len(clips), len(EMOTION_LABELS)))
        for row, scored in zip(rows, outputs, strict=True):
            for item in scored:
                row[EMOTION_LABELS.index(LABEL_MAP[str(item["label"]).lower()])] += item["score"]
        return rows / rows.sum(axis=1, keepdims=True)


def load_speech_emotion_classifier(settings: Settings) -> SpeechEmotionClassifier | None:
    """``settings.speech_emotion_model`` on ``settings.device``; None when it is unset."""
    if not settings.speech_emotion_model:
        return None
    from transformers import pipeline

    device = resolve_device(settings.device)
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    try:
        classifier = pipeline(
            "audio-classification", model=settings.speech_emotion_model, device=device, token=token
        )
    except (OSError, ValueError) as error:
        raise SpeechEmotionError(
            f"cannot load speech emotion model {settings.speech_emotion_model}"
        ) from error
    labels = [str(label) for label in (classifier.model.config.id2label or {}).values()]
    unknown = sorted(label for label in labels if label.lower() not in LABEL_MAP)
    if unknown:
        raise SpeechEmotionError(
            f"speech emotion labels {unknown} map to none of {EMOTION_LABELS} "
            "(services/speech_emotion.py LABEL_MAP)"
        )
    return SpeechEmotionClassifier(classifier, settings.speech_emotion_weight)


def hear_emotions(
    emotions: Sequence[Emotion],
    clips: Sequence[Audio],
    classifier: SpeechEmotionClassifier,
) -> tuple[Emotion, ...]:
    """``emotions`` (from the text of each utterance) fused with what ``classifier`` hears
    in ``clips`` (each utterance's 16 kHz audio, same order). Clips shorter than MIN_CLIP_S
    keep the text's emotion; longer than MAX_CLIP_S are judged on their middle."""
    if len(emotions) != len(clips):
        raise ValueError(f"{len(emotions)} emotions for {len(clips)} clips")
    audible = [i for i, clip in enumerate(clips) if clip.duration >= MIN_CLIP_S]
    if not audible:
        return tuple(emotions)
    if any(clips[i].sample_rate != SAMPLE_RATE for i in audible):
        raise ValueError(f"speech emotion needs {SAMPLE_RATE} Hz audio")
    speech = classifier.predict_proba([_middle(clips[i], MAX_CLIP_S) for i in audible])
    fused = list(emotions)
    heard = classifier.heard_labels
    for i, row in zip(audible, speech, strict=True):
        fused[i] = fuse(emotions[i], row, heard, classifier.speech_weight)
    return tuple(fused)


def fuse(
    text: Emotion, speech: npt.NDArray[np.float64], heard: frozenset[str], speech_weight: float
) -> Emotion:
    """The text's distribution with the mass of the ``heard`` labels re-divided:
    ``speech_weight`` of it as ``speech`` (zero outside ``heard``) says, the rest as the
    text did. Sums to 1 whenever both inputs do."""
    text_row = np.array([text.scores.get(label, 0.0) for label in EMOTION_LABELS])
    known = np.array([label in heard for label in EMOTION_LABELS])
    mass = float(text_row[known].sum())
    fused = text_row.copy()
    fused[known] = (1 - speech_weight) * text_row[known] + speech_weight * mass * speech[known]
    fused /= fused.sum()
    best = int(np.argmax(fused))
    scores = {label: float(p) for label, p in zip(EMOTION_LABELS, fused, strict=True)}
    return Emotion(label=EMOTION_LABELS[best], score=float(fused[best]), scores=scores)


def _middle(clip: Audio, seconds: float) -> Audio:
    if clip.duration <= seconds:
        return clip
    start = (clip.duration - seconds) / 2
    return clip.slice(start, start + seconds)
