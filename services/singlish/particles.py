"""Listening for the particles Whisper drops at the end of a clause.

Whisper writes "You go first." for "You go first lah." more often than it writes the particle:
it was trained on English transcripts, which have none. At each clause end of an utterance
(a word followed by a comma, a full stop or the end of the text; see
:mod:`services.singlish.text`) where no target word already stands, :func:`listen_for_particles`
scores the last ~2 s of the clause with the recogniser itself, teacher-forced, as written and
with each particle of :data:`PARTICLES` inserted after its last word ("You go first lah."),
and records the likeliest particle and its margin, log P(with it) - log P(as written) in nats,
as a :class:`~services.singlish.verification.Verdict` of kind :data:`PARTICLE`.
:func:`services.singlish.occurrences.detect_occurrences` counts the particle where the margin
reaches the dictionary's ``verify_margins["particle"]``; the verdict is stored evidence, so a
recount with another margin needs no audio.

One encoder pass over a short window and one batched teacher-forced pass per clause end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.domain import Audio, ProgressCallback, Utterance, Word, no_progress
from services.singlish.dictionary import Corrections
from services.singlish.text import Break, tokens
from services.singlish.verification import Verdict, Verifier, word_spans
from services.singlish.words import TARGET_WORDS

PARTICLE = "particle"  # the verdicts' kind (Verdict.verifier), and its margin's name
RULE = "particle at clause end"
# Clause-final particles Whisper drops; "ah" and "sia" close clauses too.
PARTICLES: tuple[str, ...] = ("lah", "leh", "lor", "meh", "hor", "ah", "sia")
CONTEXT_S = 2.0  # seconds of the clause before its last word's end that are scored
PAD_S = 0.2  # audio kept before the first scored word
TAIL_S = 0.6  # audio kept after the last word, at most (up to the next word's start)


@dataclass(frozen=True)
class ClauseEnd:
    """The words scored for one clause end: ``words[-1]`` closes the clause; the audio
    window runs from ``start`` to ``end`` s."""

    words: tuple[Word, ...]
    start: float
    end: float

    @property
    def text(self) -> str:
        return "".join(w.text for w in self.words).strip()


def listen_for_particles(
    audio: Audio,
    utterances: Sequence[Utterance],
    corrections: Corrections,
    verifier: Verifier,
    on_progress: ProgressCallback = no_progress,
    prompt: str = "",
) -> tuple[Verdict, ...]:
    """A :data:`PARTICLE` verdict for every clause end of ``utterances`` where no target word
    stands (16 kHz ``audio`` of the whole session); scored with ``prompt`` (empty: none).
    Reports the fraction of utterances done."""
    verdicts = []
    for done, utterance in enumerate(utterances, start=1):
        for clause in clause_ends(utterance, corrections):
            margins = particle_margins(audio, clause, verifier, prompt)
            best = max(margins, key=lambda p: margins[p])
            last = clause.words[-1]
            said = (utterance.speaker, last.start, last.end, last.text.strip())
            verdicts.append(Verdict(*said, best, RULE, PARTICLE, round(margins[best], 3)))
        on_progress(done / len(utterances))
    return tuple(verdicts)


def particle_margins(
    audio: Audio, clause: ClauseEnd, verifier: Verifier, prompt: str = ""
) -> dict[str, float]:
    """Particle → log P(the clause with it) - log P(the clause as written), nats."""
    written = clause.text
    readings = [with_particle(written, p) for p in PARTICLES]
    window = audio.slice(clause.start, clause.end)
    as_written, *with_each = verifier.log_probs(window, [written, *readings], prompt)
    return {p: lp - as_written for p, lp in zip(PARTICLES, with_each, strict=True)}


def with_particle(text: str, particle: str) -> str:
    """``text`` with ``particle`` after its last word, before its closing punctuation:
    "You go first." → "You go first lah."."""
    body = text.rstrip(".,!?;:\u2026 ")
    return f"{body} {particle}{text[len(body) :]}"


def clause_ends(utterance: Utterance, corrections: Corrections) -> list[ClauseEnd]:
    """The clause ends of ``utterance`` worth listening at: a word followed by a clause or
    sentence break (or the end) that is not itself a target word, a word a dictionary rule
    reads ("law", "there"), nor followed by a target word."""
    spans = word_spans(utterance.words)
    said = tokens(utterance.text)
    skipped = {r.heard[-1] for r in corrections.rules} | set(TARGET_WORDS)
    ends = []
    for i, token in enumerate(said):
        following = said[i + 1].text if i + 1 < len(said) else ""
        if token.after < Break.CLAUSE or token.text in skipped or following in TARGET_WORDS:
            continue
        at = next((k for k, (lo, hi, _) in enumerate(spans) if lo <= token.start < hi), None)
        if at is None:
            continue
        last = spans[at][2]
        words = [w for _, _, w in spans]
        scored = tuple(w for w in words[: at + 1] if w.start >= last.end - CONTEXT_S) or (last,)
        limit = words[at + 1].start if at + 1 < len(words) else last.end + TAIL_S
        end = max(last.end, min(limit, last.end + TAIL_S))
        ends.append(ClauseEnd(scored, scored[0].start - PAD_S, end))
    return ends
