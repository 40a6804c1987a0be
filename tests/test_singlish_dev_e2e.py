"""One generated dev conversation through the worker's own sequence with the embedded default
(``processor.process_audio``: its own diarization, Whisper base decoding with the target words
as hotwords, the learned dictionary, the verifier's second listen, occurrences → counts,
evidence clips), against make.py's exact counts.

The conversation is ``d1_bto_renovation`` (15 target words, 3 voices); the bounds below leave
one occurrence of slack against what the default measured (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections import Counter
from pathlib import Path

import pytest

from config import Settings
from processing.clips import store_clips
from processing.progress import Unwatched
from processor import process_audio
from services.audio import decode_audio
from services.domain import SpeakerHints
from storage import LocalStorage

CONVERSATION = "d1_bto_renovation"
MIN_TRUE, MAX_FALSE = 8, 1
PLAIN_TURNS = ("quite low", "shook her head", "keep telling us to plan ahead")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("espeak-ng") and shutil.which("sox")),
        reason="make.py needs espeak-ng and sox",
    ),
]


def test_a_generated_conversation_is_counted_with_evidence(singlish_dev, models, tmp_path):
    audio = decode_audio(singlish_dev / f"{CONVERSATION}.wav")
    storage = LocalStorage(tmp_path, b"test")
    heard = process_audio(audio, SpeakerHints(num_speakers=3), models, Unwatched())
    settings = Settings(environment="test", data_dir=tmp_path)
    clips = store_clips(audio, heard, uuid.uuid4(), storage, settings)
    occurrences = heard.analysis.occurrences
    reference = json.loads((singlish_dev / f"{CONVERSATION}.counts.json").read_text())["speakers"]
    found = _by_reference_speaker(heard.analysis, singlish_dev / f"{CONVERSATION}.rttm")
    true = sum(
        min(n, found.get(s, Counter())[w]) for s, c in reference.items() for w, n in c.items()
    )
    false = sum(
        max(0, n - reference.get(s, {}).get(w, 0)) for s, c in found.items() for w, n in c.items()
    )
    assert true >= MIN_TRUE and false <= MAX_FALSE, (true, false, occurrences)
    for o in occurrences:
        assert o.heard and o.text and o.dictionary_version == models.singlish.corrections.version
        assert not any(phrase in o.text for phrase in PLAIN_TURNS), o
        assert (tmp_path / clips.evidence[(o.start, o.end)]).is_file()


def _by_reference_speaker(analysis, rttm: Path) -> dict[str, Counter[str]]:
    """The counts per hypothesised speaker, renamed to the reference speaker it overlaps most
    (as shared/singlish/score.py maps them)."""
    turns = []
    for line in rttm.read_text().splitlines():
        fields = line.split()
        start, duration = float(fields[3]), float(fields[4])
        turns.append((start, start + duration, fields[7]))
    overlap: dict[str, Counter[str]] = {}
    for segment in analysis.segments:
        for a, b, who in turns:
            shared = min(b, segment.end) - max(a, segment.start)
            if shared > 0:
                overlap.setdefault(segment.speaker, Counter())[who] += shared
    name = {hyp: refs.most_common(1)[0][0] for hyp, refs in overlap.items()}
    counts: dict[str, Counter[str]] = {}
    for o in analysis.occurrences:
        counts.setdefault(name.get(o.speaker, o.speaker), Counter())[o.word] += 1
    return counts
