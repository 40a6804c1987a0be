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
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DbSession

from models import OccurrenceReview, Segment, Session, WordOccurrence
from services.domain import Utterance, Word
from services.singlish.confidence import (
    ACCEPTED,
    CONFIRMED,
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


@dataclass(frozen=True)
class Decision:
    """A member's decision on an occurrence, found again by its word and time after the
    occurrence rows are made anew (a reprocess)."""

    occurrence_id: uuid.UUID
    word: str
    start: float | None
    decision: str
    decided_by: uuid.UUID | None
    decided_at: datetime | None


# how far a reprocess may move an occurrence (its words' times) and still be the same one
SAME_OCCURRENCE_S = 0.3


def decisions_of(db: DbSession, session_id: uuid.UUID) -> list[Decision]:
    """The session's occurrences members disputed or confirmed."""
    rows = db.scalars(
        select(WordOccurrence).where(
            WordOccurrence.session_id == session_id, WordOccurrence.decision.is_not(None)
        )
    )
    return [
        Decision(o.id, o.word, o.start_s, o.decision or "", o.decided_by, o.decided_at)
        for o in rows
    ]


def carry_decisions(
    db: DbSession, decisions: Sequence[Decision], rows: Sequence[WordOccurrence]
) -> None:
    """Give each decision to the new row of the same word nearest its time (within
    :data:`SAME_OCCURRENCE_S`), which then counts as decided, and point its review history
    at that row; a decision whose occurrence is not heard again keeps only its history.
    ``rows`` are flushed (they have ids)."""
    free = [r for r in rows if r.start_s is not None]
    for decided in decisions:
        near = [
            r
            for r in free
            if r.word == decided.word
            and decided.start is not None
            and abs((r.start_s or 0.0) - decided.start) <= SAME_OCCURRENCE_S
        ]
        if not near:
            continue
        row = min(near, key=lambda r: abs((r.start_s or 0.0) - (decided.start or 0.0)))
        free.remove(row)
        row.decision, row.decided_by, row.decided_at = (
            decided.decision,
            decided.decided_by,
            decided.decided_at,
        )
        row.counted = decided.decision == CONFIRMED
        db.execute(
            update(OccurrenceReview)
            .where(
                OccurrenceReview.session_id == row.session_id,
                OccurrenceReview.occurrence_id.is_(None),
                OccurrenceReview.word == decided.word,
                OccurrenceReview.start_s == decided.start,
            )
            .values(occurrence_id=row.id)
        )
