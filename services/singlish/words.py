"""Per-speaker counts of the target words, on corrected text, whole words only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from services.singlish.text import tokenize

TARGET_WORDS: tuple[str, ...] = (
    "walao", "cheebai", "lanjiao", "lah", "lor", "sia", "meh", "leh", "hor", "ah", "can",
    "paiseh", "shiok", "sian", "alamak", "aiyo", "bodoh", "kiasu", "kiasi", "bojio",
)  # fmt: skip


def count_targets(text: str, targets: Iterable[str] = TARGET_WORDS) -> Counter[str]:
    """How often each target word occurs in ``text`` as a whole word (absent words omitted)."""
    wanted = set(targets)
    return Counter(word for word in tokenize(text) if word in wanted)
