"""``python -m bench pipeline --gpu``: the production stack on CUDA, for timing.

Diarization is a pyannote.audio pipeline of the ``speaker-diarization-3.1`` architecture;
ASR is a large Whisper. Each is loaded pretrained when it can be (a hub id with a token, a
local copy, a cached download). Where the weights cannot be had, a model of the same
architecture with random weights is built instead, so the timings stay honest while the
outputs are meaningless; every such substitution is written into the results' ``notes``:

* diarization: PyanNet (SincNet, 4 bidirectional LSTM layers of 128, 2 linear layers, the
  7-class powerset head of segmentation-3.0) + WeSpeaker ResNet34 embeddings +
  agglomerative clustering with 3.1's parameters. pyannote runs every network on every
  window whatever the weights, so its time does not depend on them.
* ASR: a ``transformers`` Whisper of the named size in float16; each 30 s window is
  encoded and then decoded greedily for ``TOKENS_PER_WINDOW`` steps with a KV cache (a
  random model never stops by itself; real speech gives about that many tokens). Word
  timestamps (cross-attention alignment) are not computed, so this is a lower bound.

The probe (``bench.probe``) hands the loaders below to ``processor.load_models`` in place of
the CPU ones, and times faster-whisper alone on the same transcriber; the rest of the stages
(decode, assign, analyse with the bundled emotion model on CUDA, clips) are the worker's own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.report import BenchError
from config import Settings
from services.domain import SAMPLE_RATE, Audio, ProgressCallback, TranscriptSegment

TOKENS_PER_WINDOW = 96  # ~150 spoken words a minute is ~75 words, ~95 tokens, per 30 s
WINDOW_S = 30
ASR_BATCH = 8
# pyannote/speaker-diarization-3.1's pipeline parameters
PYANNOTE_31_PARAMS = {
    "segmentation": {"min_duration_off": 0.0},
    "clustering": {"method": "centroid", "min_cluster_size": 12, "threshold": 0.7045654963945799},
}
# transformers WhisperConfig fields per model size
WHISPER_SIZES: dict[str, dict[str, int]] = {
    "large-v3": {
        "d_model": 1280,
        "layers": 32,
        "heads": 20,
        "ffn": 5120,
        "mels": 128,
        "vocab": 51866,
    },
    "large-v2": {
        "d_model": 1280,
        "layers": 32,
        "heads": 20,
        "ffn": 5120,
        "mels": 80,
        "vocab": 51865,
    },
    "medium": {"d_model": 1024, "layers": 24, "heads": 16, "ffn": 4096, "mels": 80, "vocab": 51865},
    "small": {"d_model": 768, "layers": 12, "heads": 12, "ffn": 3072, "mels": 80, "vocab": 51865},
}

# What was substituted in this process, for the results (the probe reads it at the end).
NOTES: list[str] = []


def require_cuda() -> None:
    """Fail with a message that says what is missing, before anything is loaded."""
    try:
        import torch
    except ImportError as exc:
        raise BenchError("--gpu needs torch with CUDA; torch is not installed") from exc
    if not torch.cuda.is_available():
        raise BenchError(
            f"--gpu needs a CUDA GPU, and torch {torch.__version__} sees none here "
            f"(CUDA build: {torch.version.cuda or 'no, a CPU-only build'}). Run it on a GPU "
            "machine with a CUDA torch and the `gpu` extra (pyannote.audio) installed."
        )
    try:
        import pyannote.audio  # noqa: F401
    except ImportError as exc:
        raise BenchError("--gpu needs pyannote.audio: pip install '.[gpu]'") from exc


def cuda_settings(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(update={"device": "cuda", **update})


# --- diarization ------------------------------------------------------------------------------


def diarizer_loader(spec: dict[str, Any]) -> Callable[[Settings], Any]:
    def load(settings: Settings) -> Any:
        import torch

        from services.diarization import DiarizationError, PyannoteDiarizer, load_diarizer

        gpu_settings = cuda_settings(
            settings,
            diarization_backend="pyannote",
            diarization_model=spec["diarization_model"],
        )
        try:
            return load_diarizer(gpu_settings)
        except DiarizationError as exc:
            NOTES.append(
                f"diarization: {spec['diarization_model']} could not be loaded "
                f"({exc.__cause__ or exc}); timed a random-weight model of the "
                "speaker-diarization-3.1 architecture instead (turns are meaningless)"
            )
        pipeline = random_pyannote_31().to(torch.device("cuda"))
        return PyannoteDiarizer(pipeline, gpu_settings)

    return load


def random_pyannote_31() -> Any:
    """A ``SpeakerDiarization`` pipeline shaped like pyannote/speaker-diarization-3.1 (the
    segmentation-3.0 PyanNet, the WeSpeaker ResNet34 embedding, agglomerative clustering),
    with freshly initialised weights."""
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34
    from pyannote.audio.models.segmentation import PyanNet
    from pyannote.audio.pipelines import SpeakerDiarization

    segmentation = PyanNet(
        sincnet={"stride": 10},
        lstm={"hidden_size": 128, "num_layers": 4, "bidirectional": True, "monolithic": True},
        linear={"hidden_size": 128, "num_layers": 2},
    )
    # 10 s windows, up to 3 speakers a window and 2 at once: 7 powerset classes
    segmentation.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=10.0,
        min_duration=None,
        warm_up=(0.0, 0.0),
        classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2,
        permutation_invariant=True,
    )
    segmentation.setup()  # adds the task-dependent classifier for those specifications
    options = {
        "segmentation": segmentation,
        "embedding": WeSpeakerResNet34(),
        "embedding_exclude_overlap": True,
        "clustering": "AgglomerativeClustering",
        "segmentation_batch_size": 32,
        "embedding_batch_size": 32,
    }
    accepted = inspect.signature(SpeakerDiarization).parameters
    pipeline = SpeakerDiarization(**{k: v for k, v in options.items() if k in accepted})
    return pipeline.instantiate(PYANNOTE_31_PARAMS)


# --- ASR --------------------------------------------------------------------------------------


def transcriber_loader(spec: dict[str, Any]) -> Callable[[Settings], Any]:
    def load(settings: Settings) -> Any:
        from services.transcription import load_transcriber

        gpu_settings = cuda_settings(
            settings,
            asr_backend="faster-whisper",
            asr_model=spec["whisper"],
            asr_compute_type="float16",
        )
        try:
            return load_transcriber(gpu_settings)
        except Exception as exc:  # any failure to get the weights or run them: say which
            NOTES.append(
                f"ASR: faster-whisper {spec['whisper']!r} on CUDA could not be loaded "
                f"({type(exc).__name__}: {exc}); timed a random-weight transformers Whisper "
                f"{spec['whisper']} in float16 instead, {TOKENS_PER_WINDOW} greedy steps per "
                f"{WINDOW_S} s window, no word timestamps (no words come out)"
            )
        return RandomWhisperTranscriber.build(spec["whisper"])

    return load


@dataclass(frozen=True)
class RandomWhisperTranscriber:
    """A Whisper of a real size with random weights: the encoder and ``tokens`` decoder
    steps per 30 s window, in batches, for timing only. Returns no segments."""

    model: Any
    extractor: Any
    tokens: int = TOKENS_PER_WINDOW

    @classmethod
    def build(cls, size: str) -> RandomWhisperTranscriber:
        import torch
        from transformers import WhisperConfig, WhisperFeatureExtractor
        from transformers import WhisperForConditionalGeneration as Whisper

        shape = WHISPER_SIZES.get(size.removeprefix("openai/whisper-"), WHISPER_SIZES["large-v3"])
        config = WhisperConfig(
            vocab_size=shape["vocab"],
            num_mel_bins=shape["mels"],
            d_model=shape["d_model"],
            encoder_layers=shape["layers"],
            decoder_layers=shape["layers"],
            encoder_attention_heads=shape["heads"],
            decoder_attention_heads=shape["heads"],
            encoder_ffn_dim=shape["ffn"],
            decoder_ffn_dim=shape["ffn"],
        )
        model: Any = Whisper(config)
        model = model.to(device="cuda", dtype=torch.float16).eval()
        extractor = WhisperFeatureExtractor(feature_size=shape["mels"], sampling_rate=SAMPLE_RATE)
        return cls(model, extractor)

    def transcribe(
        self, audio: Audio, on_progress: ProgressCallback
    ) -> tuple[TranscriptSegment, ...]:
        step = WINDOW_S * audio.sample_rate
        windows = [audio.samples[i : i + step] for i in range(0, len(audio.samples), step)]
        for start in range(0, len(windows), ASR_BATCH):
            self._decode(windows[start : start + ASR_BATCH])
            on_progress(min(1.0, (start + ASR_BATCH) / len(windows)))
        return ()

    def _decode(self, batch: list[Any]) -> None:
        import torch

        features = self._features(batch)
        start = self.model.config.decoder_start_token_id
        with torch.inference_mode():
            encoded = self.model.model.encoder(features).last_hidden_state
            tokens = torch.full((len(batch), 1), start, device="cuda", dtype=torch.long)
            cache = None
            for _ in range(self.tokens):
                out = self.model(
                    encoder_outputs=(encoded,),
                    decoder_input_ids=tokens[:, -1:],
                    past_key_values=cache,
                    use_cache=True,
                )
                cache = out.past_key_values
                tokens = torch.cat([tokens, out.logits[:, -1].argmax(-1, keepdim=True)], dim=1)

    def _features(self, batch: list[Any]) -> Any:
        """Log-mel features (batch, mels, 3000) in float16 on CUDA; computed on the GPU
        where this transformers version can."""
        import torch

        options: dict[str, Any] = {"sampling_rate": SAMPLE_RATE, "return_tensors": "pt"}
        if "device" in inspect.signature(self.extractor.__call__).parameters:
            options["device"] = "cuda"
        features = self.extractor(batch, **options).input_features
        return features.to(device="cuda", dtype=torch.float16)


def device_info(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    return {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "max_gpu_memory_allocated_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
        "notes": list(NOTES),
    }
