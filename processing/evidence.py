"""The evidence behind the counts, as stored: a segment's recognised words and verdicts (JSON
columns), and one ``WordOccurrence`` row per word heard, with its confidence and whether it
counts; and a group's judgements of its occurrences, read back as the feedback that rates the
group's later sessions (:func:`group_feedback_of`).

:func:`processing.rows.save` writes them from the analysis; :func:`processing.operations.recount`
reads the words and verdicts back into the values ``services.singlish.occurrences`` detects on, so a
recount runs exactly the detection the pipeline ran, without ASR.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from models import Segment, Session, WordOccurrence
from services.domain import Utterance, Word
from services.singlish.confidence import (
    ACCEPTED,
    GroupFeedback,
    Rating,
    confidence_of,
    counts,
    group_feedback,
    reading_key,
)
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
    rating: Rating,
) -> list[WordOccurrence]:
    """New rows for ``occurrences``, rated by ``rating`` (the group's feedback included), not
    yet judged by anyone."""
    rows = []
    for o in occurrences:
        confidence = confidence_of(o, rating)
        rows.append(
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
                confidence=confidence,
                confidence_version=rating.version,
                counted=counts(confidence, None, rating.min_confidence),
            )
        )
    return rows


def group_feedback_of(db: DbSession, group_id: uuid.UUID) -> GroupFeedback:
    """The group's standing judgements, keyed by what was read and how: every occurrence of
    its sessions a member disputed or confirmed (the latest decision), and every one left
    counted and undisputed in a session the group reviewed (one with any decision)."""
    reviewed = (
        select(WordOccurrence.session_id)
        .join(Session, Session.id == WordOccurrence.session_id)
        .where(Session.group_id == group_id, WordOccurrence.decision.is_not(None))
        .distinct()
    )
    rows = db.scalars(
        select(WordOccurrence)
        .where(
            WordOccurrence.session_id.in_(reviewed),
            WordOccurrence.decision.is_not(None) | WordOccurrence.counted.is_(True),
        )
        .order_by(WordOccurrence.id)
    )
    return group_feedback((reading_key(o), o.decision or ACCEPTED) for o in rows)
