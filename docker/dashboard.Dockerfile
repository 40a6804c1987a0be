# syntax=docker/dockerfile:1
# rq-dashboard for the `dashboard` compose profile: queues, jobs and workers, read from Redis
# (RQ_DASHBOARD_REDIS_URL). Pinned, and rq 2 like the workers, so both read the same job format.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install rq-dashboard==0.9.0 "rq>=2,<3" && useradd --uid 10001 dashboard
USER dashboard
EXPOSE 9181
CMD ["rq-dashboard", "--port", "9181"]
