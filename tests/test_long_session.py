"""A multi-hour session is decoded chunk by chunk into an on-disk spool: the worker's memory
does not grow with the session's length (2 hours of 16 kHz float32 would be 460 MB)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.paths import REPO

SAMPLE = REPO / "samples" / "chunk_001.ogg"  # 10 s of Opus, as a phone uploads it

_MEASURE = textwrap.dedent(
    """
    import json, resource, sys, uuid
    from pathlib import Path
    from processing.rows import ChunkRef
    from processing.chunks import concatenate_chunks
    from services.audio import AudioSpool
    from storage import LocalStorage

    root, chunks = Path(sys.argv[1]), int(sys.argv[2])
    storage = LocalStorage(root / "storage", b"k")
    key = "sessions/long/chunks/000000-opus"
    with open(sys.argv[3], "rb") as fh:
        storage.put(key, fh)
    refs = [ChunkRef(n, key, "audio/ogg") for n in range(chunks)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with AudioSpool(root / "work") as spool:
        warnings = concatenate_chunks(refs, storage, spool, skip_bad_chunks=False)
        audio = spool.audio()
        duration = audio.duration
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_abs = float(abs(audio.samples[: 16_000 * 60]).max())  # first minute only
    print(json.dumps({"duration": duration, "rss_growth_mb": (after - before) / 1024,
                      "warnings": warnings, "peak": peak_abs}))
    """
)


@pytest.mark.slow
def test_two_hour_session_decodes_in_bounded_memory(tmp_path):
    chunk = tmp_path / "minute.ogg"  # a 60 s Opus chunk: the sample, looped
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-stream_loop",
            "5",
            "-i",
            str(SAMPLE),
            "-c:a",
            "libopus",
            "-b:a",
            "24k",
            str(chunk),
        ],
        check=True,
    )
    chunks = 120  # 120 x 60 s = 2 hours
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(tmp_path), str(chunks), str(chunk)],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["duration"] == pytest.approx(2 * 3600, rel=0.01)
    assert measured["warnings"] == []
    assert measured["peak"] > 0.01  # real audio came through, not silence
    raw_mb = measured["duration"] * 16_000 * 4 / 2**20
    # measured 2026-11-21: 56 MB of growth for 440 MB of raw PCM (one chunk being decoded)
    assert measured["rss_growth_mb"] < 0.2 * raw_mb, measured
