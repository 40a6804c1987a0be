#!/usr/bin/env bash
# The main job on the embedded default: install, then process the sample conversation (three
# mixed-format chunks of one session) with the offline models, print the table, write JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/lahstats process samples/chunk_000.m4a samples/chunk_001.ogg samples/chunk_002.wav \
  --num-speakers 2 --json out/sample_result.json "$@"
