#!/usr/bin/env bash
# The main job on the embedded default: install, then process the demo conversation (three
# friends at a hawker centre, 43 s, samples/singlish/) with the offline models, print the table,
# write JSON, and print what each of them actually said to compare with.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/lahstats process samples/singlish/hawker_supper.flac \
  --num-speakers 3 --json out/demo_result.json "$@"
.venv/bin/python - <<'PY'
import json

said = json.load(open("samples/singlish/hawker_supper.counts.json"))["speakers"]
print("What was said (samples/singlish/hawker_supper.counts.json; speakers in order of first words):")
for speaker, counts in said.items():
    print(f"  {speaker:<4}", ", ".join(f"{w} x{n}" for w, n in sorted(counts.items()) if n))
PY
