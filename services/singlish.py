"""Biasing the recogniser towards the target words.

Whisper has seen little Singlish: unprompted, the bundled models write "voila" for "walao" and
drop "ah". Given the target words as ``hotwords`` (faster-whisper puts them in the decoder's
prompt before every 30 s window), the Whisper base model writes most of them as spelled here
(see ``bench/singlish_eval.py``). ``SINGLISH_HOTWORDS=true`` makes the product's faster-whisper
transcriber decode so (:func:`services.transcription.load_faster_whisper_transcriber`).
"""

from __future__ import annotations

from collections.abc import Sequence

from services.counting import TARGET_WORDS


def hotword_prompt(targets: Sequence[str] = TARGET_WORDS) -> str:
    """The prompt text: the words as one comma-separated sentence ("Walao, cheebai, ...
    bojio."). Whisper copies spelling from its prompt, so it writes the words the way the
    counter looks for them. (Sentences using the words did worse: see the bench.)"""
    words = list(targets)
    return ", ".join([words[0].capitalize(), *words[1:]]) + "." if words else ""
