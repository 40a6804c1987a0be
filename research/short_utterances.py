"""``python -m research.short_utterances``: what happens to a short lone reply ("Can lah!",
"Walao!", 1.8-2.7 s) in the faster-whisper transcriber, with and without its VAD and its
hotword prompt.

Each line is spoken by three of the dev set's voices (``shared/singlish/script_dev.tsv``, so
nothing here touches the never-tuned set), padded with 0.5 s of silence, and decoded three
ways: as the product does (VAD, hotwords), without the VAD, and without the hotwords. For each
the raw segments are printed, then what the product keeps of them (the squeeze rule and the
prompt-echo rule of ``services.transcription``).

What it showed (2026-11-30, Whisper base int8): the VAD keeps every one of these clips; the
squeeze rule dropped whole segments where the prompted decoder went on writing its prompt
("Walao, cheebai, lanjiao, kiasu, kiasu, ..." for "Walao!", "aiyo, aiyo, ..." for "Paiseh"):
the word said vanished with the loop. Unprompted, the same clips give English ("Well, that
was...", "Come on.").
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from config import Settings
from services.audio import decode_audio
from services.domain import Audio
from services.transcription import (
    FasterWhisperTranscriber,
    _from_whisper_words,
    _squeezed,
    load_faster_whisper_transcriber,
    without_prompt_echo,
)

LINES: tuple[str, ...] = ("Eight, the press yard.", "Can lah!", "Walao!", "Shiok!", "Okay lor.")
LINES += ("Paiseh.", "Sian.", "Really meh?")
VOICES: tuple[tuple[str, int, int], ...] = (("en-us+steph2", 72, 161),)
VOICES += (("en-gb-scotland+grandpa", 42, 152), ("en-gb-x-rp+Denis", 37, 166))


def spoken(text: str, voice: tuple[str, int, int], scratch: Path) -> Audio:
    name, pitch, speed = voice
    raw, padded = scratch / "raw.wav", scratch / "padded.wav"
    subprocess.run(
        ["espeak-ng", "-v", name, "-p", str(pitch), "-s", str(speed), "-w", str(raw), text],
        check=True,
    )
    subprocess.run(
        ["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(padded), "pad", "0.5", "0.5"],
        check=True,
    )
    return decode_audio(padded)


def decoded(audio: Audio, transcriber: FasterWhisperTranscriber) -> tuple[list[str], list[str]]:
    """(raw segment texts, the texts the product keeps)."""
    segments, _ = transcriber.whisper.transcribe(
        audio.samples,
        language="en",
        beam_size=transcriber.beam_size,
        word_timestamps=True,
        vad_filter=transcriber.vad_filter,
        hotwords=transcriber.hotwords or None,
        temperature=[0.0],
    )
    raw, kept = [], []
    for segment in segments:
        raw.append(segment.text.strip())
        words = without_prompt_echo(
            _from_whisper_words(segment, audio.duration), transcriber.hotwords
        )
        if words and not _squeezed(words):
            kept.append("".join(w.text for w in words).strip())
    return raw, kept


def main() -> None:
    settings = Settings()
    default = load_faster_whisper_transcriber(settings)
    ways = {
        "default": default,
        "no VAD": FasterWhisperTranscriber(
            default.whisper, default.language, default.beam_size, False, default.hotwords
        ),
        "no hotwords": FasterWhisperTranscriber(
            default.whisper, default.language, default.beam_size, True, None
        ),
    }
    with tempfile.TemporaryDirectory() as scratch:
        for text in LINES:
            for voice in VOICES:
                audio = spoken(text, voice, Path(scratch))
                print(f"{text!r} ({voice[0]}, {audio.duration:.1f} s)")
                for way, transcriber in ways.items():
                    raw, kept = decoded(audio, transcriber)
                    print(f"    {way:12} raw {[r[:80] for r in raw]} -> kept {kept}")


if __name__ == "__main__":
    main()
