"""Biasing the recogniser towards the target words.

Whisper has seen little Singlish: unprompted, the bundled models write "voila" for "walao" and
drop "ah". Given the target words as ``hotwords`` (faster-whisper puts them in the decoder's
prompt before every 30 s window), the Whisper base model writes most of them as spelled here
(measured by ``research/singlish_eval.py``; figures in README.md). ``SINGLISH_HOTWORDS=true``
(the default) makes the product's faster-whisper transcriber decode with
:func:`decoding_hotwords`; the verifier's biased rules score with the full
:func:`hotword_prompt`.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.singlish.words import TARGET_WORDS

# Target words that are ordinary English. In the decoder's prompt they pull plain English their
# way ("canned pears lack full flavour" came out "Can, paise, lak, full, flavour"), so the
# decoding hotwords leave them out; the recogniser writes them unprompted anyway.
ENGLISH_TARGETS = ("can", "ah")


def decoding_hotwords() -> str:
    """What ``SINGLISH_HOTWORDS`` decodes with: the target words but the English ones (what
    that costs in Singlish counts and saves on plain English: README.md, "Singlish target
    words")."""
    return hotword_prompt(decoding_targets())


def decoding_targets() -> tuple[str, ...]:
    """The target words in the decoder's prompt."""
    return tuple(w for w in TARGET_WORDS if w not in ENGLISH_TARGETS)


def hotword_prompt(targets: Sequence[str] = TARGET_WORDS) -> str:
    """The prompt text: the words as one comma-separated sentence ("Walao, cheebai, ...
    bojio."). Whisper copies spelling from its prompt, so it writes the words the way the
    counter looks for them. (Sentences using the words did worse: ``research/singlish_eval.py``.)"""
    words = list(targets)
    return ", ".join([words[0].capitalize(), *words[1:]]) + "." if words else ""
