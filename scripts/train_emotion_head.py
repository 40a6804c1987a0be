"""Train the emotion head shipped in ``services/data/emotion_head.npz``.

Run from the repository root (sklearn is needed here, never at run time)::

    .venv/bin/python -m scripts.train_emotion_head [--corpus DIR] [--out FILE]

Data: GoEmotions (``train.tsv``/``dev.tsv``: text, comma-separated label ids, id;
``labels.txt``; ``ekman_mapping.json``). Its 27 emotions are folded into the 6 Ekman ones,
``neutral`` stays, giving our seven ``EMOTION_LABELS``.

Multi-label rows: a training row is kept when all its labels fold into one of the seven
(``joy,love`` is joy; ``anger,neutral`` is dropped: 39,555 of 43,410 rows). Evaluation
uses dev rows with exactly one GoEmotions label (4,548 of 5,426), as the brief's
baselines do. Every candidate head is fitted on the same cached embeddings; the one
with the best dev accuracy is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.neural_network import MLPClassifier

from services.domain import EMOTION_LABELS
from services.emotion import (
    HEAD_PATH,
    SentenceEncoder,
    SoftmaxHead,
    bundled_encoder_path,
    save_head,
)

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared/corpus/text_emotion/goemotions"
DEFAULT_CACHE = Path("/tmp/lahstats-emotion-embeddings")
ENCODE_BATCH = 128
SEED = 0

Embeddings = npt.NDArray[np.float32]  # (n_texts, encoder dim), unit rows
ClassIds = npt.NDArray[np.int64]  # (n_texts,), indices into EMOTION_LABELS


@dataclass(frozen=True)
class Example:
    """One GoEmotions row: its text, the seven-way classes its labels fold into, and how
    many GoEmotions labels it had."""

    text: str
    classes: frozenset[str]
    n_labels: int


def read_split(corpus: Path, split: str) -> list[Example]:
    """The rows of ``{split}.tsv`` with labels folded into ``EMOTION_LABELS``."""
    names = (corpus / "labels.txt").read_text().split()
    ekman = json.loads((corpus / "ekman_mapping.json").read_text())
    fold = {emotion: group for group, members in ekman.items() for emotion in members}
    fold["neutral"] = "neutral"
    examples = []
    for line in (corpus / f"{split}.tsv").read_text(encoding="utf-8").splitlines():
        text, label_ids, _ = line.split("\t")
        labels = [names[int(i)] for i in label_ids.split(",")]
        examples.append(Example(text, frozenset(fold[name] for name in labels), len(labels)))
    return examples


def class_ids(examples: Sequence[Example]) -> ClassIds:
    """The one class of each example (each must have exactly one)."""
    return np.array([EMOTION_LABELS.index(next(iter(e.classes))) for e in examples])


def embed_cached(encoder: SentenceEncoder, texts: list[str], cache_dir: Path) -> Embeddings:
    """``encoder.encode(texts)``, cached on disk by encoder name and text content."""
    digest = hashlib.sha256("\n".join([encoder.name, *texts]).encode()).hexdigest()[:16]
    path = cache_dir / f"{encoder.name}-{digest}.npy"
    if path.exists():
        return np.load(path)
    started = time.perf_counter()
    parts = [
        encoder.encode(texts[i : i + ENCODE_BATCH]) for i in range(0, len(texts), ENCODE_BATCH)
    ]
    embeddings = np.concatenate(parts)
    print(f"embedded {len(texts)} texts in {time.perf_counter() - started:.0f} s")
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, embeddings)
    return embeddings


def candidates() -> dict[str, Callable[[], Any]]:
    """The heads tried, by name; each factory gives a fresh unfitted sklearn model (how they
    compared, and why the MLP ships: README.md, "How right the embedded default is")."""
    return {
        "logreg-C1": lambda: LogisticRegression(C=1.0, max_iter=2000),
        "logreg-C4": lambda: LogisticRegression(C=4.0, max_iter=2000),
        "logreg-C4-balanced": lambda: LogisticRegression(
            C=4.0, max_iter=2000, class_weight="balanced"
        ),
        "mlp-256": lambda: MLPClassifier(
            hidden_layer_sizes=(256,), alpha=1e-2, early_stopping=True, random_state=SEED
        ),
    }


def to_head(model: Any) -> SoftmaxHead:
    """The fitted sklearn ``model`` as a numpy ``SoftmaxHead`` over ``EMOTION_LABELS``,
    its weights rounded to float32 as ``save_head`` stores them."""
    labels = tuple(EMOTION_LABELS[int(c)] for c in model.classes_)
    if isinstance(model, LogisticRegression):
        pairs = [(model.coef_.T, model.intercept_)]
    else:
        pairs = list(zip(model.coefs_, model.intercepts_, strict=True))
    layers = tuple((_as_stored(w), _as_stored(b)) for w, b in pairs)
    return SoftmaxHead(labels=labels, layers=layers)


def _as_stored(array: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return array.astype(np.float32).astype(np.float64)


def scores(truth: ClassIds, predicted: ClassIds) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
    }


def predict_ids(head: SoftmaxHead, embeddings: Embeddings) -> ClassIds:
    """Argmax of the numpy head, as indices into ``EMOTION_LABELS``."""
    columns = np.argmax(head.predict_proba(embeddings), axis=1)
    return np.array([EMOTION_LABELS.index(head.labels[c]) for c in columns])


def fit_best(
    x_train: Embeddings, y_train: ClassIds, x_dev: Embeddings, y_dev: ClassIds
) -> tuple[str, Any, dict[str, dict[str, float]]]:
    """Fit every candidate; return the name and model with the best dev accuracy, and all
    candidates' dev scores."""
    results: dict[str, dict[str, float]] = {}
    fitted: dict[str, Any] = {}
    for name, make in candidates().items():
        started = time.perf_counter()
        fitted[name] = make().fit(x_train, y_train)
        results[name] = scores(y_dev, fitted[name].predict(x_dev))
        print(f"{name:20s} {results[name]} ({time.perf_counter() - started:.0f} s)")
    best = max(results, key=lambda name: results[name]["accuracy"])
    return best, fitted[best], results


def majority_baseline(y_train: ClassIds, y_dev: ClassIds) -> dict[str, Any]:
    """The commonest training class and the dev scores of always answering it."""
    majority = Counter(y_train.tolist()).most_common(1)[0][0]
    return {"label": EMOTION_LABELS[majority], **scores(y_dev, np.full_like(y_dev, majority))}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="GoEmotions directory")
    parser.add_argument(
        "--out", type=Path, default=HEAD_PATH, help="where to write the head (.npz)"
    )
    parser.add_argument(
        "--encoder", type=Path, default=None, help="encoder dir (default: bundled MiniLM)"
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="embedding cache")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    encoder = SentenceEncoder.load(args.encoder or bundled_encoder_path())
    train = [e for e in read_split(args.corpus, "train") if len(e.classes) == 1]
    dev = [e for e in read_split(args.corpus, "dev") if e.n_labels == 1]
    x_train = embed_cached(encoder, [e.text for e in train], args.cache_dir)
    x_dev = embed_cached(encoder, [e.text for e in dev], args.cache_dir)
    y_train, y_dev = class_ids(train), class_ids(dev)

    best, model, results = fit_best(x_train, y_train, x_dev, y_dev)
    head = to_head(model)
    metadata = {
        "head": best,
        "encoder": "sentence-transformers/all-MiniLM-L6-v2"
        if args.encoder is None
        else encoder.name,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "train_rows": len(train),
        "dev_rows": len(dev),
        # Scored with the numpy head as shipped (float32 weights), not sklearn's model.
        "dev": scores(y_dev, predict_ids(head, x_dev)),
        "dev_majority_baseline": majority_baseline(y_train, y_dev),
        "candidates": results,
    }
    save_head(replace(head, metadata=metadata), args.out)
    print(json.dumps({k: metadata[k] for k in ("head", "dev", "dev_majority_baseline")}, indent=2))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
