"""The target words: what LahStats counts, in the product spec's spelling."""

from __future__ import annotations

TARGET_WORDS: tuple[str, ...] = (
    "walao", "cheebai", "lanjiao", "lah", "lor", "sia", "meh", "leh", "hor", "ah", "can",
    "paiseh", "shiok", "sian", "alamak", "aiyo", "bodoh", "kiasu", "kiasi", "bojio",
)  # fmt: skip
