"""What a word is, for corrections and counting alike (no ML imports).

Text is lower-cased with curly apostrophes straightened; a word is a run of letters or digits,
optionally joined by inner apostrophes. So "can" is a word of "can, lah" but not of "cannot",
"can't" or "candle", and "ah" is not in "aha" or "ahead".

Rules that care where a word stands ("law" closing a clause) read the punctuation between
words: a *sentence* break is ``.``, ``?``, ``!`` or an ellipsis; a *clause* break is a comma,
semicolon, colon or dash; anything else (spaces, hyphens, quotes) is no break. The end of the
text counts as a sentence break.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_SENTENCE_END = re.compile(r"[.?!\u2026]")
_CLAUSE_END = re.compile(r"[,;:\u2013\u2014]|\s-\s")


class Break(IntEnum):
    """What separates a word from the next one, weakest first."""

    NONE = 0
    CLAUSE = 1
    SENTENCE = 2


@dataclass(frozen=True)
class Token:
    """One word of a text: its normalised form, where it sits (character offsets into the
    normalised text, which keeps the original's length) and what follows it."""

    text: str
    start: int
    end: int
    gap: str  # the characters up to the next word (or the end of the text)
    last: bool = False

    @property
    def after(self) -> Break:
        """The break that follows this word."""
        if self.last or _SENTENCE_END.search(self.gap):
            return Break.SENTENCE
        return Break.CLAUSE if _CLAUSE_END.search(self.gap) else Break.NONE

    @property
    def asks(self) -> bool:
        """Whether a question mark follows this word."""
        return "?" in self.gap


def normalize(text: str) -> str:
    return text.lower().translate(_APOSTROPHES)


def tokenize(text: str) -> list[str]:
    """The words of ``text``, lower-cased."""
    return WORD.findall(normalize(text))


def tokens(text: str) -> tuple[Token, ...]:
    """The words of ``text`` with their offsets and the break that follows each."""
    normal = normalize(text)
    matches = list(WORD.finditer(normal))
    if not matches:  # "", "...", "♪": Whisper writes such segments over music and noise
        return ()
    ends = [m.start() for m in matches[1:]] + [len(normal)]
    return tuple(
        Token(m.group(), m.start(), m.end(), normal[m.end() : end], last=end == len(normal))
        for m, end in zip(matches, ends, strict=True)
    )
