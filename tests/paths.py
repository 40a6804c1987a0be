"""Where the tests find their data (``../shared`` beside the checkout) and their throw-away
services: the Postgres server that holds each test's database, and the Redis database they
flush (test infrastructure, not app settings, hence read here and not by ``config.py``)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
SINGLISH = SHARED / "singlish"

PG_ADMIN = os.environ.get("LAHSTATS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("LAHSTATS_TEST_REDIS", "redis://127.0.0.1:6379/15")
