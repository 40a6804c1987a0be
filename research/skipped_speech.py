"""``python -m research.skipped_speech [dev|unseen ...]``: the speech the recogniser skips and
what hearing it again (``ASR_HEAL_SKIPS``, ``services.transcription.missed_speech``) brings.

Each conversation of the named Singlish sets (the bench's, generated on first use; dev is the
tune set, unseen the never-tuned one) is recognised four ways, one process: the whole recording
and the live path's stretches (``services.hearing.recognise`` on ``chunk_stretches``, codas
included), each with the skipped speech heard again and without. Printed per set and way: words,
WER against the reference transcript (jiwer, lower-cased words), CPU seconds per audio minute,
and the VAD speech (s) left without a word after it (``missed_speech`` of what was heard)."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, cast

import jiwer

from bench.quality import chunks_of, singlish_dev_set
from bench.singlish_unseen import singlish_unseen_set
from config import Settings
from research.seek_carry import _reference, _words
from services.audio import decode_audio
from services.domain import Audio, TranscriptSegment, Word
from services.hearing import chunk_stretches, recognise
from services.transcription import load_faster_whisper_transcriber, missed_speech, transcribe

SETS = {"dev": singlish_dev_set, "unseen": singlish_unseen_set}


def _whole(audio: Audio, transcriber: Any) -> list[TranscriptSegment]:
    return list(transcribe(audio, transcriber))


def _stretches(audio: Audio, transcriber: Any) -> list[TranscriptSegment]:
    """The stretches' segments in the recording's seconds."""
    out = []
    for start, stretch in chunk_stretches(chunks_of(audio)):
        at = start + stretch.start
        for s in recognise(stretch, transcriber):
            words = tuple(Word(w.start + at, w.end + at, w.text, w.probability) for w in s.words)
            out.append(TranscriptSegment(s.start + at, s.end + at, s.text, words))
    return out


def main(names: list[str]) -> None:
    healing = load_faster_whisper_transcriber(Settings())
    ears = {"healed": healing, "as decoded": dataclasses.replace(healing, heal_skips=False)}
    for name in names:
        wavs = sorted(SETS[name]().glob("*.wav"))
        recordings = [decode_audio(wav) for wav in wavs]
        refs = [_words(_reference(wav.with_suffix(".stm"))) for wav in wavs]
        minutes = sum(a.duration for a in recordings) / 60
        for way, hear in {"whole": _whole, "stretches": _stretches}.items():
            for label, transcriber in ears.items():
                cpu = time.process_time()
                heard = [hear(a, cast(Any, transcriber)) for a in recordings]
                cpu = time.process_time() - cpu
                hyps = [_words(" ".join(w.text for s in h for w in s.words)) for h in heard]
                left = sum(b - a for r, h in zip(recordings, heard, strict=True)
                           for a, b in missed_speech(r, h))  # fmt: skip
                print(
                    f"{name}: {way}, {label}: {sum(len(h.split()) for h in hyps)} words, "
                    f"WER {jiwer.wer(refs, [h or 'x' for h in hyps]):.3f}, "
                    f"{cpu / minutes:.2f} CPU s per audio min, {left:.1f} s of speech unheard",
                    flush=True,
                )


if __name__ == "__main__":
    main(sys.argv[1:] or ["dev", "unseen"])
