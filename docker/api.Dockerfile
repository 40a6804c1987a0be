# syntax=docker/dockerfile:1
# The API image: FastAPI, the Postgres/Redis clients and Supabase storage; no torch, no models
# (pyproject's base dependencies are the API's needs only). `services` and `processing` come
# along for the operator CLI (`docker compose exec api lahstats ...`); the API never imports them.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# /data is created here so that a fresh named volume mounted on it belongs to the app's user
RUN useradd --create-home --uid 10001 lahstats && install -d -o lahstats /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY backend ./backend
COPY cli ./cli
COPY migrations ./migrations
COPY processing ./processing
COPY queueing ./queueing
COPY services ./services
COPY *.py ./
RUN pip install ".[supabase]"
USER lahstats
EXPOSE 8000
CMD ["sh", "-c", "lahstats migrate && exec lahstats api --host 0.0.0.0 --port 8000"]
