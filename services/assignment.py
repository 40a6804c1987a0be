"""Who said each word: join the transcript with the diarization.

Pure functions on the domain values; no ML imports. Inputs are never changed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

from services.domain import SpeakerTurn, TranscriptSegment, Utterance, Word

DEFAULT_SPEAKER = "SPEAKER_00"


def assign_speakers(
    segments: Sequence[TranscriptSegment], turns: Sequence[SpeakerTurn]
) -> tuple[Utterance, ...]:
    """Split the transcript into utterances, one per run of words by one speaker.

    Each word goes to the speaker whose turns overlap it longest (ties: the first speaker
    name in sort order); a word that overlaps no turn goes to the nearest turn's speaker,
    and with no turns at all to ``SPEAKER_00``. An utterance never crosses an ASR segment
    boundary; a segment is split where its speaker changes.
    """
    index = _TurnIndex.build(turns)
    utterances = []
    for segment in segments:
        speakers = [index.speaker_of(word) for word in segment.words]
        for speaker, run in groupby(zip(speakers, segment.words, strict=True), key=lambda p: p[0]):
            words = tuple(word for _, word in run)
            utterances.append(Utterance(speaker, words[0].start, words[-1].end, words))
    return tuple(utterances)


@dataclass(frozen=True)
class _TurnIndex:
    """Turns sorted by start, with the running maximum of their ends, so that the turns near
    a word are found by bisection instead of a scan over the whole session."""

    turns: tuple[SpeakerTurn, ...]
    starts: tuple[float, ...]
    # latest[i]: the index of the turn that ends last among turns[: i + 1]
    latest: tuple[int, ...]

    @classmethod
    def build(cls, turns: Sequence[SpeakerTurn]) -> _TurnIndex:
        ordered = tuple(sorted(turns, key=lambda t: (t.start, t.end)))
        latest: list[int] = []
        for i, turn in enumerate(ordered):
            latest.append(i if not latest or turn.end > ordered[latest[-1]].end else latest[-1])
        return cls(ordered, tuple(t.start for t in ordered), tuple(latest))

    def speaker_of(self, word: Word) -> str:
        if not self.turns:
            return DEFAULT_SPEAKER
        before = bisect_left(self.starts, word.end)  # turns[:before] start before the word ends
        overlaps: defaultdict[str, float] = defaultdict(float)
        i = before - 1
        while i >= 0 and self.turns[self.latest[i]].end > word.start:
            turn = self.turns[i]
            overlaps[turn.speaker] += max(
                0.0, min(turn.end, word.end) - max(turn.start, word.start)
            )
            i -= 1
        if overlaps and max(overlaps.values()) > 0:
            return max(sorted(overlaps.items()), key=lambda item: item[1])[0]
        return self._nearest(word, before).speaker

    def _nearest(self, word: Word, before: int) -> SpeakerTurn:
        """The turn closest in time to ``word`` (one containing a zero-length word counts as
        nearest); on a tie, the earlier one."""
        candidates = []
        if before > 0:
            candidates.append(self.turns[self.latest[before - 1]])
        if before < len(self.turns):
            candidates.append(self.turns[before])
        return min(candidates, key=lambda t: max(t.start - word.end, word.start - t.end))
