#!/usr/bin/env bash
# The test command (README, .ci/run): install, start Postgres and Redis if needed, lint, type-check,
# then the whole suite against the real services and real models.
set -euo pipefail
cd "$(dirname "$0")/.."
LAHSTATS_INSTALL_TEST_TOOLS=1 bash scripts/install.sh
bash scripts/services.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .
.venv/bin/python -m pytest "$@"
