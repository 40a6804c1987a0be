# The GPU worker: CUDA torch, pyannote (the `gpu` extra) and transformers. Model weights are
# mounted at /models (see docker-compose.yml), never fetched at run time unless allowed.
# The CUDA runtime comes with torch's wheels (nvidia-* packages); the driver from the host
# through the NVIDIA container toolkit (the compose file reserves the GPU).
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY backend ./backend
COPY migrations ./migrations
COPY services ./services
COPY processing ./processing
COPY bench ./bench
COPY scripts ./scripts
COPY config.py db.py models.py storage.py jobs.py worker.py processor.py cli.py ./
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128 \
    && pip install ".[ml,gpu]" \
    && pip install --no-deps resemblyzer==0.1.4 \
    && python -m scripts.warm
CMD ["lahstats", "worker"]
