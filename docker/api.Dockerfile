# The API image: FastAPI and the database/queue clients only — no torch, no models.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY backend ./backend
COPY migrations ./migrations
COPY services ./services
COPY processing ./processing
COPY bench ./bench
COPY config.py db.py models.py storage.py jobs.py worker.py processor.py cli.py ./
RUN pip install .
EXPOSE 8000
CMD ["uvicorn", "backend.main:app", "--host", "0.0.0.0", "--port", "8000"]
