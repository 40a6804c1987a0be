"""What a word is, for corrections and counting alike (no ML imports).

Text is lower-cased with curly apostrophes straightened; a word is a run of letters or digits,
optionally joined by inner apostrophes. So "can" is a word of "can, lah" but not of "cannot",
"can't" or "candle", and "ah" is not in "aha" or "ahead".
"""

from __future__ import annotations

import re

WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def normalize(text: str) -> str:
    return text.lower().translate(_APOSTROPHES)


def tokenize(text: str) -> list[str]:
    """The words of ``text``, lower-cased."""
    return WORD.findall(normalize(text))
