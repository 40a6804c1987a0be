"""``python -m bench pipeline --gpu``: the production stack on CUDA, for timing.

The production stack (docs/DEPLOYMENT.md, "GPU worker"): pyannote
``speaker-diarization-community-1``, faster-whisper ``large-v3-turbo`` (float16) and the
transformers text emotion model (j-hartmann), plus the speech emotion model when
``--speech-emotion-model`` names one; each loaded by the product's own loader. Where the
weights cannot be had (gated, offline), a model of the same architecture and size with
random weights is built locally (``bench.random_models``) and loaded by the same loader, so
the timings stay honest while the outputs are meaningless; every substitution is written
into the results' ``notes``:

* diarization: a community-1 directory (PyanNet segmentation-3.0, WeSpeaker ResNet34, PLDA,
  VBx) at community-1's segmentation step of 0.1; pyannote runs every network on every
  window whatever the weights. (Clustering time does depend on them: VBx on random
  embeddings finds its own number of speakers.)
* ASR: a ``transformers`` Whisper of the named size in float16; each 30 s window is
  encoded and then decoded greedily for ``TOKENS_PER_WINDOW`` steps with a KV cache (a
  random model never stops by itself; real speech gives about that many tokens). Word
  timestamps (cross-attention alignment) are not computed, so this is a lower bound.
* text emotion: a distilroberta-sized RoBERTa with the seven labels.

``--device cpu`` runs the same code without CUDA (a dry run: tests/test_bench.py runs it on
tiny sizes); the probe (``bench.probe``) hands the loaders below to ``processor.load_engines``
in place of the CPU ones, and times faster-whisper alone on the same transcriber.
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import CORPUS, BenchError
from config import Settings
from services.domain import SAMPLE_RATE, Audio, ProgressCallback, TranscriptSegment

TOKENS_PER_WINDOW = 96  # ~150 spoken words a minute is ~75 words, ~95 tokens, per 30 s
WINDOW_S = 30
ASR_BATCH = 8
# transformers WhisperConfig fields per model size
WHISPER_SIZES: dict[str, dict[str, int]] = {
    "large-v3-turbo": {
        "d_model": 1280,
        "layers": 32,
        "decoder_layers": 4,
        "heads": 20,
        "ffn": 5120,
        "mels": 128,
        "vocab": 51866,
    },
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
    "tiny": {"d_model": 384, "layers": 4, "heads": 6, "ffn": 1536, "mels": 80, "vocab": 51865},
}
# speech the random segmentation model is calibrated on (bench.random_models._calibrate)
CALIBRATION = CORPUS / "diarization/nemo_an4_diarize_test/an4_diarize_test.wav"
DEFAULT_DIARIZATION_MODEL = "pyannote/speaker-diarization-community-1"
DEFAULT_WHISPER = "large-v3-turbo"
DEFAULT_EMOTION_MODEL = "j-hartmann/emotion-english-distilroberta-base"

# What was substituted in this process, for the results (the probe reads it at the end).
NOTES: list[str] = []


def require_device(device: str) -> None:
    """Fail with a message that says what is missing, before anything is loaded."""
    try:
        import torch
    except ImportError as exc:
        raise BenchError("--gpu needs torch; torch is not installed") from exc
    if device == "cuda" and not torch.cuda.is_available():
        raise BenchError(
            f"--gpu needs a CUDA GPU, and torch {torch.__version__} sees none here "
            f"(CUDA build: {torch.version.cuda or 'no, a CPU-only build'}). Run it on a GPU "
            "machine with a CUDA torch and the `gpu` extra (pyannote.audio) installed, "
            "or pass --device cpu for a dry run."
        )
    try:
        import pyannote.audio  # noqa: F401
    except (ImportError, OSError) as exc:
        raise BenchError(
            f"--gpu needs pyannote.audio 4 ({exc}): install the `pyannote` extra "
            "(LAHSTATS_INSTALL_PYANNOTE=1 bash scripts/install.sh)"
        ) from exc


def device_settings(settings: Settings, spec: dict[str, Any], **update: Any) -> Settings:
    return settings.model_copy(update={"device": spec.get("device", "cuda"), **update})


def _scratch() -> Path:
    """Where random-weight models are built; removed when the probe's process ends."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = tempfile.TemporaryDirectory(prefix="lahstats-random-models-")
    return Path(_SCRATCH.name)


_SCRATCH: tempfile.TemporaryDirectory[str] | None = None


# --- diarization ------------------------------------------------------------------------------


def diarizer_loader(spec: dict[str, Any]) -> Callable[[Settings], Any]:
    def load(settings: Settings) -> Any:
        from services.diarization import DiarizationError, load_diarizer

        model = spec["diarization_model"]
        try:
            return load_diarizer(
                device_settings(
                    settings, spec, diarization_backend="pyannote", diarization_model=model
                )
            )
        except DiarizationError as exc:
            NOTES.append(
                f"diarization: {model} could not be loaded ({exc.__cause__ or exc}); timed a "
                "random-weight model of the community-1 architecture at a segmentation step "
                f"of {spec.get('segmentation_step', 0.1)} instead (turns are meaningless)"
            )
        random_dir = random_community_1(spec.get("segmentation_step", 0.1))
        return load_diarizer(
            device_settings(
                settings, spec, diarization_backend="pyannote", diarization_model=str(random_dir)
            )
        )

    return load


def random_community_1(segmentation_step: float) -> Path:
    """A community-1-shaped pipeline directory with random weights (bench.random_models)."""
    import soundfile

    from bench.random_models import build_pyannote_pipeline

    calibration, _ = soundfile.read(CALIBRATION, dtype="float32")
    return build_pyannote_pipeline(
        _scratch() / "community-1", calibration, "community-1", segmentation_step
    )


def emotion_loader(spec: dict[str, Any]) -> Callable[[Settings], Any]:
    """The transformers text emotion model (random RoBERTa weights of distilroberta's size
    where it cannot be loaded)."""

    def load(settings: Settings) -> Any:
        from bench.random_models import build_text_emotion
        from services.emotion import EmotionModelError, load_emotion_classifier

        model = spec["emotion_model"]
        try:
            return load_emotion_classifier(
                device_settings(settings, spec, emotion_backend="transformers", emotion_model=model)
            )
        except EmotionModelError as exc:
            NOTES.append(
                f"text emotion: {model} could not be loaded ({exc.__cause__ or exc}); timed a "
                "random-weight RoBERTa of distilroberta's size instead"
            )
        random_dir = build_text_emotion(_scratch() / "text-emotion", full_size=True)
        return load_emotion_classifier(
            device_settings(
                settings, spec, emotion_backend="transformers", emotion_model=str(random_dir)
            )
        )

    return load


# --- ASR --------------------------------------------------------------------------------------


def transcriber_loader(spec: dict[str, Any]) -> Callable[[Settings], Any]:
    def load(settings: Settings) -> Any:
        from services.transcription import load_transcriber

        device = spec.get("device", "cuda")
        gpu_settings = device_settings(
            settings,
            spec,
            asr_backend="faster-whisper",
            asr_model=spec["whisper"],
            asr_compute_type="float16" if device == "cuda" else "int8",
        )
        try:
            return load_transcriber(gpu_settings)
        except Exception as exc:  # any failure to get the weights or run them: say which
            NOTES.append(
                f"ASR: faster-whisper {spec['whisper']!r} on {device} could not be loaded "
                f"({type(exc).__name__}: {exc}); timed a random-weight transformers Whisper "
                f"{spec['whisper']} instead, {TOKENS_PER_WINDOW} greedy steps per "
                f"{WINDOW_S} s window, no word timestamps (no words come out)"
            )
        return RandomWhisperTranscriber.build(spec["whisper"], device)

    return load


@dataclass(frozen=True)
class RandomWhisperTranscriber:
    """A Whisper of a real size with random weights: the encoder and ``tokens`` decoder
    steps per 30 s window, in batches, for timing only. Returns no segments."""

    model: Any
    extractor: Any
    device: str = "cuda"
    tokens: int = TOKENS_PER_WINDOW

    @classmethod
    def build(cls, size: str, device: str = "cuda") -> RandomWhisperTranscriber:
        import torch
        from transformers import WhisperConfig, WhisperFeatureExtractor
        from transformers import WhisperForConditionalGeneration as Whisper

        name = size.removeprefix("openai/whisper-")
        shape = WHISPER_SIZES.get(name, WHISPER_SIZES[DEFAULT_WHISPER])
        config = WhisperConfig(
            vocab_size=shape["vocab"],
            num_mel_bins=shape["mels"],
            d_model=shape["d_model"],
            encoder_layers=shape["layers"],
            decoder_layers=shape.get("decoder_layers", shape["layers"]),
            encoder_attention_heads=shape["heads"],
            decoder_attention_heads=shape["heads"],
            encoder_ffn_dim=shape["ffn"],
            decoder_ffn_dim=shape["ffn"],
        )
        model: Any = Whisper(config)
        dtype = torch.float16 if device == "cuda" else torch.float32
        model = model.to(device=device, dtype=dtype).eval()
        extractor = WhisperFeatureExtractor(feature_size=shape["mels"], sampling_rate=SAMPLE_RATE)
        return cls(model, extractor, device)

    def transcribe(
        self, audio: Audio, on_progress: ProgressCallback, until: float | None = None
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
            tokens = torch.full((len(batch), 1), start, device=self.device, dtype=torch.long)
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
        """Log-mel features (batch, mels, 3000) in the model's dtype on its device; computed
        there where this transformers version can."""

        options: dict[str, Any] = {"sampling_rate": SAMPLE_RATE, "return_tensors": "pt"}
        if "device" in inspect.signature(self.extractor.__call__).parameters:
            options["device"] = self.device
        features = self.extractor(batch, **options).input_features
        return features.to(device=self.device, dtype=self.model.dtype)


def device_info(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    if spec.get("device", "cuda") != "cuda":
        return {"device": "cpu (--gpu dry run)", "torch": torch.__version__, "notes": list(NOTES)}
    return {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "max_gpu_memory_allocated_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
        "notes": list(NOTES),
    }
