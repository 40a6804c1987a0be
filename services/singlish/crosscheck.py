"""A second listen without the prompt, at every target word the prompted decoder wrote.

The hotword prompt (:mod:`services.singlish.hotwords`) is what makes Whisper write "walao" and
"lanjiao" at all, and also what makes it write them for plain English ("Lunch hour" came out
"Lanjiao", "her" came out "hor"). So for each occurrence of a prompted word, :func:`cross_check`
decodes a short window around it again with no prompt, then scores both readings of that window
(the prompted one, as heard, and the unprompted one) with the recogniser itself, teacher-forced
and again without a prompt. The :class:`~services.singlish.verification.Verdict` records the
unprompted text as ``heard`` and, as ``margin``, log P(prompted reading) - log P(unprompted
reading) in nats: near zero where the listens agree or the audio fits both ("voila" for
"walao"), strongly negative where only the prompt put the word there.
:func:`services.singlish.occurrences.detect_occurrences` drops an occurrence whose margin is
below the dictionary's ``verify_margins["unprompted"]``; the verdict stays as evidence, so a
recount with another margin needs no audio.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol, runtime_checkable

from services.domain import Audio, ProgressCallback, Utterance, no_progress
from services.singlish.occurrences import SOURCE_VERIFIED, Occurrence
from services.singlish.verification import UNPROMPTED, Verdict, Verifier

CONTEXT_S = 2.0  # words either side of the target kept in the window (seconds)
PAD_S = 0.3  # audio kept either side of the window's first and last word
RULE = "second listen without the prompt"


@runtime_checkable
class Listener(Verifier, Protocol):
    """A recogniser that can also decode a short stretch of audio on its own."""

    def transcribe(self, audio: Audio) -> str:
        """The text of ``audio`` (16 kHz mono), decoded with no prompt."""
        ...


def cross_check(
    audio: Audio,
    utterances: Sequence[Utterance],
    occurrences: Sequence[Occurrence],
    listener: Listener,
    prompted: Collection[str],
    on_progress: ProgressCallback = no_progress,
) -> tuple[Verdict, ...]:
    """A verdict for every occurrence of a ``prompted`` word (one the decoder's prompt named)
    that no verify rule already checked; 16 kHz ``audio`` of the whole session. Reports the
    fraction of occurrences done."""
    checked = [o for o in occurrences if o.word in prompted and o.source != SOURCE_VERIFIED]
    verdicts = []
    for done, occurrence in enumerate(checked, start=1):
        utterance = next(
            u
            for u in utterances
            if u.speaker == occurrence.speaker
            and u.start - 1e-6 <= occurrence.start <= u.end + 1e-6
        )
        verdicts.append(_listen(audio, utterance, occurrence, listener))
        on_progress(done / len(checked))
    return tuple(verdicts)


def _listen(
    audio: Audio, utterance: Utterance, occurrence: Occurrence, listener: Listener
) -> Verdict:
    context = [
        w
        for w in utterance.words
        if w.end > occurrence.start - CONTEXT_S and w.start < occurrence.end + CONTEXT_S
    ]
    window = audio.slice(context[0].start - PAD_S, context[-1].end + PAD_S)
    as_prompted = "".join(w.text for w in context).strip()
    unprompted = listener.transcribe(window)
    prompted_lp, unprompted_lp = listener.log_probs(window, [as_prompted, unprompted])
    return Verdict(
        occurrence.speaker, occurrence.start, occurrence.end, unprompted, occurrence.word,
        RULE, UNPROMPTED, round(prompted_lp - unprompted_lp, 3),
    )  # fmt: skip
