"""The evidence behind the counts, as stored: a segment's recognised words and verdicts (JSON
columns), and one ``WordOccurrence`` row per counted word.

:func:`processing.rows.save` writes them from the analysis; :func:`processing.operations.recount`
reads the words and verdicts back into the values ``services.singlish.occurrences`` detects on, so a
recount runs exactly the detection the pipeline ran, without ASR.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from models import Segment, WordOccurrence
from services.domain import Utterance, Word
from services.singlish.occurrences import Occurrence
from services.singlish.verification import Verdict


def words_json(words: Sequence[Word]) -> list[list[Any]]:
    return [[w.start, w.end, w.text, w.probability] for w in words]


def verdicts_json(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    return [asdict(v) for v in verdicts]


def stored_utterance(segment: Segment, speaker: str) -> Utterance:
    """The utterance a segment was made from. A segment stored before words were kept (no
    ``words``) becomes one word spanning the segment: its counts survive, without word times."""
    words = tuple(Word(float(a), float(b), str(t), float(p)) for a, b, t, p in segment.words)
    if not words:
        words = (Word(segment.start_s, segment.end_s, f" {segment.text}"),)
    return Utterance(speaker, segment.start_s, segment.end_s, words)


def stored_verdicts(segment: Segment) -> tuple[Verdict, ...]:
    return tuple(Verdict(**v) for v in segment.verdicts)


def occurrence_rows(
    occurrences: Sequence[Occurrence],
    session_id: uuid.UUID,
    speaker_ids: Mapping[str, uuid.UUID],
    segment_id: uuid.UUID,
    clip_keys: Mapping[tuple[float, float], str],
) -> list[WordOccurrence]:
    return [
        WordOccurrence(
            session_id=session_id,
            speaker_id=speaker_ids[o.speaker],
            segment_id=segment_id,
            word=o.word,
            start_s=o.start,
            end_s=o.end,
            heard=o.heard,
            source=o.source,
            rule=o.rule,
            dictionary_version=o.dictionary_version,
            score=o.score,
            clip_key=clip_keys.get((o.start, o.end)),
        )
        for o in occurrences
    ]
