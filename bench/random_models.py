"""Production-shaped models with random weights, built locally: nothing is downloaded.

They have the real architectures (and, unless a smaller size is asked for, the real sizes),
so they exercise every production loader end to end and time the production stack on a
machine that cannot reach the gated weights; what they *say* is noise. The tests build them
under ``tmp_path``; ``python -m bench pipeline --gpu --random-weights`` builds them to time a
GPU. Each builder writes the directory layout the product reads in production:

- :func:`build_pyannote_pipeline`: a cloned ``pyannote/speaker-diarization-community-1``
  (``config.yaml``, ``segmentation/``, ``embedding/``, ``plda/``) or a 3.1-style directory
  (agglomerative clustering) that ``Pipeline.from_pretrained(directory)`` loads offline;
- :func:`build_whisper`: a transformers Whisper directory (model, tokenizer, processor);
- :func:`build_text_emotion`: a RoBERTa text classifier with the seven emotion labels;
- :func:`build_speech_emotion`: a wav2vec2 audio classifier with the four labels of
  ``superb/wav2vec2-base-superb-er`` (neu, hap, ang, sad).

Needs torch and transformers (the ``ml`` extra); the pyannote builder also pyannote.audio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import yaml

from services.domain import SAMPLE_RATE

PipelineStyle = Literal["community-1", "3.1"]

# The hyper-parameters the two published pipelines ship in their config.yaml.
_COMMUNITY_1_PARAMS = {
    "clustering": {"threshold": 0.6, "Fa": 0.07, "Fb": 0.8},
    "segmentation": {"min_duration_off": 0.0},
}
_V31_PARAMS = {
    "clustering": {"method": "centroid", "min_cluster_size": 12, "threshold": 0.7045654963945799},
    "segmentation": {"min_duration_off": 0.0},
}
PLDA_DIMENSION = 128  # community-1's LDA dimension (pyannote's PLDA default)
EMBEDDING_DIMENSION = 256  # WeSpeaker ResNet34's


def build_pyannote_pipeline(
    directory: Path,
    calibration: npt.NDArray[np.float32],
    style: PipelineStyle = "community-1",
    segmentation_step: float = 0.1,
    batch_size: int = 32,
    seed: int = 0,
) -> Path:
    """Write a pyannote.audio 4 speaker-diarization directory with random weights.

    ``segmentation/``: PyanNet with segmentation-3.0's specifications (10 s chunks, three
    speakers, powerset of at most two at once); ``embedding/``: WeSpeaker ResNet34 (256-d);
    ``plda/``: random but well-conditioned transforms (VBx needs them; a 3.1-style config
    still names them, or pyannote 4 would fetch community-1's from the hub).

    ``calibration`` (16 kHz mono speech; give it other speech than the model will be run
    on) sets the segmentation's output layer, see :func:`_calibrate`.
    ``segmentation_step`` is the fraction of a chunk between two chunks (0.1 in production;
    the tests use more to stay fast)."""
    import torch

    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    _save_model(_calibrate(_segmentation_model(), calibration), directory / "segmentation")
    _save_model(_embedding_model(), directory / "embedding")
    _save_plda(directory / "plda", np.random.default_rng(seed))
    params: dict[str, Any] = {
        "clustering": "VBxClustering" if style == "community-1" else "AgglomerativeClustering",
        "embedding": "$model/embedding",
        "embedding_batch_size": batch_size,
        "embedding_exclude_overlap": True,
        "plda": "$model/plda",
        "segmentation": "$model/segmentation",
        "segmentation_batch_size": batch_size,
        "segmentation_step": segmentation_step,
    }
    config = {
        "dependencies": {"pyannote.audio": "4.0.0"},
        "pipeline": {"name": "pyannote.audio.pipelines.SpeakerDiarization", "params": params},
        "params": _COMMUNITY_1_PARAMS if style == "community-1" else _V31_PARAMS,
    }
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=True))
    return directory


def _segmentation_model() -> Any:
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.segmentation import PyanNet

    model = PyanNet(sincnet={"stride": 10})
    model.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=10.0,
        min_duration=10.0,
        warm_up=(0.0, 0.0),
        classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2,
        permutation_invariant=True,
    )
    model.build()
    return model


# Logit offset of the three one-speaker classes (powerset order: none, 1, 2, 3, 1+2, 1+3, 2+3)
_ONE_SPEAKER_PRIOR = (0.0, 1.5, 1.5, 1.5, 0.0, 0.0, 0.0)


def _calibrate(model: Any, calibration: npt.NDArray[np.float32]) -> Any:
    """Standardise the output layer's inputs on ``calibration`` and favour one speaker at a
    time, as conversations do.

    Untouched, a random PyanNet's LSTM states barely move with the audio, so one powerset
    class wins every frame: either nobody or two overlapping speakers throughout, which
    leaves pyannote no clean single-speaker frame to embed and nothing to cluster. Centred
    and scaled on speech, the same random weights give classes that change with the audio,
    so every later step (embeddings, VBx, the exclusive view) does real work."""
    import torch

    samples = np.resize(np.asarray(calibration, np.float32), SAMPLE_RATE * 10)
    features: list[torch.Tensor] = []
    hook = model.classifier.register_forward_hook(lambda m, i, o: features.append(i[0]))
    with torch.inference_mode():
        model.eval()(torch.from_numpy(samples)[None, None])
    hook.remove()
    hidden = features[0][0]  # (frames, features)
    scale = 3.0 / (hidden.std(0) + 1e-6)
    with torch.no_grad():
        weight = model.classifier.weight * scale
        model.classifier.weight.copy_(weight)
        model.classifier.bias.copy_(-(weight @ hidden.mean(0)) + torch.tensor(_ONE_SPEAKER_PRIOR))
    return model


def _embedding_model() -> Any:
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34

    model = WeSpeakerResNet34()
    # what the published checkpoint carries: one embedding per chunk
    model.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=3.0
    )
    return model


def _save_model(model: Any, directory: Path) -> None:
    """What ``Model.from_pretrained(directory)`` reads: a Lightning checkpoint named
    ``pytorch_model.bin`` carrying pyannote's architecture and specifications."""
    import lightning
    import torch

    checkpoint: dict[str, Any] = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    model.on_save_checkpoint(checkpoint)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, directory / "pytorch_model.bin")


def _save_plda(directory: Path, rng: np.random.Generator) -> None:
    """``xvec_transform.npz`` (centering means and an LDA from 256 to 128 dimensions) and
    ``plda.npz`` (mean, an orthogonal transform, positive between-class variances)."""
    directory.mkdir(parents=True, exist_ok=True)
    lda = np.linalg.qr(rng.standard_normal((EMBEDDING_DIMENSION, EMBEDDING_DIMENSION)))[0]
    np.savez(
        directory / "xvec_transform.npz",
        mean1=rng.standard_normal(EMBEDDING_DIMENSION) * 0.01,
        mean2=rng.standard_normal(PLDA_DIMENSION) * 0.01,
        lda=lda[:, :PLDA_DIMENSION],
    )
    np.savez(
        directory / "plda.npz",
        mu=np.zeros(PLDA_DIMENSION),
        tr=np.linalg.qr(rng.standard_normal((PLDA_DIMENSION, PLDA_DIMENSION)))[0],
        psi=np.sort(rng.uniform(0.5, 20.0, PLDA_DIMENSION))[::-1].copy(),
    )
