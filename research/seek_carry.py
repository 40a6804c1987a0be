"""``python -m research.seek_carry [dev|unseen ...]``: would a live session cost the recogniser
what the whole recording costs if each chunk job carried on from where Whisper's own window
stopped, instead of from a pause it chose (issue 16)?

Today a chunk job hears a *stretch* (the previous chunk's tail from its cut, then its own chunk
to its cut, then 3 s of lookahead): ~30 s of speech, which Whisper seldom finishes in one
30 s window (its window stops at the last complete segment, often seconds before the cut), so
most stretches take a second encoder pass for their last seconds. The scheme simulated here
("seek-carry"): a job hears from where the session's hearing stopped to its chunk's end; every
encoder window it allows is a full one (it allows another only while at least 30 s are left
after the last segment Whisper finished), and what Whisper has not finished is carried into the
next job. The last chunk's job hears everything. Windows are limited by refusing the encoder
call of a window not allowed (faster-whisper encodes a window only when asked for its segments).

Printed per set, for the whole recording, today's stretches (``services.hearing.recognise``)
and seek-carry: encoder passes, CPU seconds per audio minute, and WER against the reference
transcript (jiwer, lower-cased words). Research only: the product does not do this.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any, cast

import jiwer
import numpy as np

from bench.quality import chunks_of, singlish_dev_set
from bench.singlish_unseen import singlish_unseen_set
from config import Settings
from processor import load_engines
from services import transcription
from services.audio import decode_audio
from services.domain import Audio, Word
from services.hearing import chunk_stretches, recognise

SETS = {"dev": singlish_dev_set, "unseen": singlish_unseen_set}
FULL_S = 30.0  # one Whisper window
# A window never ends where the job's audio does (Whisper garbles the words before an end it
# can see): a job hears, or allows another window, only with this much audio beyond it.
MARGIN_S = 3.0
MAX_IDLE_CARRY_S = 3.0
DEBUG = False  # a window that finished nothing: carry only its last seconds


class _Refused(Exception):
    """The encoder was asked for a window the job does not allow."""


class _Gate:
    """Wraps a faster-whisper model's ``encode``: counts passes, refuses those not allowed."""

    def __init__(self, whisper: Any) -> None:
        self.passes = 0
        self.allow: Any = lambda: True
        encode = whisper.encode

        def gated(features: Any) -> Any:
            if not self.allow():
                raise _Refused
            self.passes += 1
            return encode(features)

        whisper.encode = gated


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def _reference(stm: Path) -> str:
    return " ".join(line.split(maxsplit=5)[5] for line in stm.read_text().splitlines())


def _seek_carry(chunks: list[Audio], transcriber: Any, gate: _Gate) -> list[Word]:
    whisper = transcriber.whisper
    session = np.concatenate([c.samples for c in chunks]).astype(np.float32)
    rate = chunks[0].sample_rate
    ends = np.cumsum([c.duration for c in chunks])
    start, kept = 0.0, []
    for n, end in enumerate(ends):
        final = n == len(ends) - 1
        if not final and end - start < FULL_S + MARGIN_S:
            continue  # not a full window yet: the next chunk's job hears it
        audio = session[round(start * rate) : round(end * rate)]
        length = len(audio) / rate
        state = {"last": 0.0, "windows": 0}

        def allow(
            state: dict[str, Any] = state, length: float = length, final: bool = final
        ) -> bool:
            state["windows"] += 1
            return final or state["windows"] == 1 or length - state["last"] >= FULL_S + MARGIN_S

        gate.allow = allow
        segments, _ = whisper.transcribe(audio, **transcriber.options(length))
        heard: list[Word] = []
        try:
            for segment in segments:
                words = transcription._from_whisper_words(segment, length)
                words = transcription.without_prompt_echo(words, transcriber.hotwords)
                if words and not transcription._squeezed(words):
                    heard.extend(words)
                state["last"] = segment.end
        except _Refused:
            pass
        kept += [Word(w.start + start, w.end + start, w.text, w.probability) for w in heard]
        if DEBUG:
            print(
                f"  job {n}: {start:.1f}-{end:.1f} s, windows asked {state['windows']}, "
                f"last segment ends {state['last']:.1f} s in"
            )
        if final:
            break
        if state["last"] > 0:
            start += state["last"]
        else:
            start = max(start, end - MAX_IDLE_CARRY_S)
    return kept


def main(names: list[str]) -> None:
    engines = load_engines(Settings())
    transcriber = cast(Any, engines.transcriber)
    gate = _Gate(transcriber.whisper)
    for name in names:
        wavs = sorted(SETS[name]().glob("*.wav"))
        recordings = [decode_audio(wav) for wav in wavs]
        refs = [_words(_reference(wav.with_suffix(".stm"))) for wav in wavs]
        minutes = sum(a.duration for a in recordings) / 60
        ways = {
            "whole": lambda a: [
                w for s in transcription.transcribe(a, transcriber) for w in s.words
            ],
            "stretches": lambda a: [
                w
                for _, st in chunk_stretches(chunks_of(a))
                for s in recognise(st, transcriber)
                for w in s.words
            ],
            "seek-carry": lambda a: _seek_carry(chunks_of(a), transcriber, gate),
        }
        for way, hear in ways.items():
            gate.passes, gate.allow = 0, lambda: True
            cpu = time.process_time()
            hyps = [_words(" ".join(w.text for w in hear(a))) for a in recordings]
            cpu = time.process_time() - cpu
            wer = jiwer.wer(refs, [h or "x" for h in hyps])
            print(
                f"{name}: {way}: {gate.passes} encoder passes, {cpu / minutes:.2f} CPU s per "
                f"audio minute, WER {wer:.3f} ({minutes:.1f} min)",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:] or ["dev", "unseen"])
