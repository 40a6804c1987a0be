"""Known voices: a diarized speaker who is two of the group's members is told apart.

A diarizer that has not heard a group before may hear two members with alike voices as one
speaker (Resemblyzer's count estimate merges them; BENCHMARKS.md "Voiceprints": a third of
the claimed members lost their suggestion that way). Once members have voiceprints, the group
knows more than the diarizer: :func:`separate_known_voices` hears each speaker's speech in
short windows with the voiceprint embedder and, when confident windows name two or more
members with enough speech each, splits the speaker between them. Every window then goes
to the member whose windows it resembles most (the session's own voices, not the
voiceprints), so the cut follows who spoke. Speakers nobody is sure of, or who are one
member, are left as the diarizer heard them: this never merges, and never names anyone
(suggestions stay :func:`services.voiceprints.match_voices`'s job).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage

from services.diarization import Diarization, FoundSpeakers, canonical_diarization
from services.domain import ProgressCallback, Recording, SpeakerTurn, no_progress
from services.voiceprints import VoiceEmbedder, embed_each, spans_without, unit

FloatArray = npt.NDArray[np.float32]

WINDOW_S = 1.5  # each window of speech embedded on its own
HOP_S = 0.75
# windows of a speaker (side by side, spread over their speech) looked at to decide whether
# they are two members; a speaker is heard in full, a window every HOP_S, only to be split
DETECT_WINDOWS = 40
MIN_MEMBER_S = 6.0  # a member needs this much confidently heard speech in a speaker ...
MIN_MEMBER_SHARE = 0.2  # ... and this share of its confidently heard speech, to be split off


@dataclass(frozen=True)
class KnownVoices:
    """The voiceprints of a session's group members in the voice embedder's space (member ->
    unit vector), and how sure a window must be to name one: its cosine ``min_score`` and its
    lead ``min_margin`` over the runner-up member (the suggestions' own thresholds)."""

    voiceprints: Mapping[Any, Sequence[float]]  # member -> unit vector
    min_score: float
    min_margin: float


@dataclass(frozen=True)
class Window:
    """``WINDOW_S`` of one speaker's speech (session seconds), inside one of its turns."""

    start: float
    end: float
    turn: int  # index of the turn it lies in

    @property
    def centre(self) -> float:
        return (self.start + self.end) / 2


def separate_known_voices(
    recording: Recording,
    diarization: Diarization,
    embedder: VoiceEmbedder,
    known: KnownVoices,
    on_progress: ProgressCallback = no_progress,
) -> Diarization:
    """``diarization`` with every speaker who is two or more of the ``known`` members split
    between them, labels made canonical again; a split speaker's backend voices are dropped
    (they were of two voices at once). Unchanged when nobody is split, or when fewer than two
    members have a voiceprint.

    A speaker is two members when, among up to :data:`DETECT_WINDOWS` of its windows, either
    confident windows name two members or more (each with :data:`MIN_MEMBER_S` and
    :data:`MIN_MEMBER_SHARE` of the confident ones), or, failing that, its windows fall in two
    groups (average-linkage clustering) whose voices resemble two different members at
    ``known.min_score`` at least, each group with that much speech: two members too alike for
    any window to be sure of (one synthesizer's voices) still sound different from each other."""
    if len(known.voiceprints) < 2:
        on_progress(1.0)
        return diarization
    prints = np.array([unit(np.asarray(v, dtype=np.float32)) for v in known.voiceprints.values()])
    min_score, min_margin = known.min_score, known.min_margin
    turns = diarization.turns
    speakers = sorted({t.speaker for t in turns})
    parts: dict[str, list[tuple[float, float, int]]] = {}
    for n, speaker in enumerate(speakers):
        found = _split(recording, turns, speaker, embedder, prints, min_score, min_margin)
        if found:
            parts[speaker] = found
        on_progress((n + 1) / len(speakers))
    if not parts:
        return diarization
    exclusive = diarization.exclusive
    return canonical_diarization(
        FoundSpeakers(
            turns=recut(turns, parts),
            exclusive=None if exclusive is turns else recut(exclusive, parts),
            voices=tuple(v for v in diarization.voices if v.speaker not in parts),
        )
    )


def _split(
    recording: Recording,
    turns: Sequence[SpeakerTurn],
    speaker: str,
    embedder: VoiceEmbedder,
    prints: FloatArray,
    min_score: float,
    min_margin: float,
) -> list[tuple[float, float, int]]:
    """(start, end, part) pieces of ``speaker``'s speech when it is two members or more;
    [] when it is not."""
    # the decision: windows side by side (each WINDOW_S of speech), spread over the speaker
    sample = speech_windows(turns, speaker, hop=WINDOW_S)
    if len(sample) < 2:
        return []
    sample = [sample[i] for i in _spread(len(sample), DETECT_WINDOWS)]
    vectors = embed_each(recording, [(w.start, w.end) for w in sample], embedder)
    labels = _labels(vectors @ prints.T, min_score, min_margin)
    members = confident_members(labels, len(prints), WINDOW_S)
    if len(members) >= 2:
        centroids = np.array([unit(vectors[labels == m].mean(axis=0)) for m in members])
    else:
        found = _two_voices(vectors, prints, min_score, WINDOW_S)
        if found is None:
            return []
        centroids = found
    # the cut: all of the speaker's speech, a window every HOP_S
    windows = speech_windows(turns, speaker, hop=HOP_S)
    vectors = embed_each(recording, [(w.start, w.end) for w in windows], embedder)
    owner = _smoothed(np.argmax(vectors @ centroids.T, axis=1))
    if len(set(owner.tolist())) < 2:
        return []
    return [(*_owned_span(windows, i), int(owner[i])) for i in range(len(windows))]


def _two_voices(
    vectors: FloatArray, prints: FloatArray, min_score: float, seconds_each: float
) -> FloatArray | None:
    """The centroids of the windows' two groups when each has enough speech (windows of
    ``seconds_each``) and resembles a different member at ``min_score`` at least; else None."""
    heard = vectors[np.linalg.norm(vectors, axis=1) > 0]
    if len(heard) < 2:
        return None
    groups = fcluster(linkage(heard, method="average", metric="cosine"), 2, criterion="maxclust")
    centroids, best = [], []
    for group in (1, 2):
        windows = heard[groups == group]
        too_little = len(windows) * seconds_each < MIN_MEMBER_S
        if too_little or len(windows) < MIN_MEMBER_SHARE * len(heard):
            return None
        centroid = unit(windows.mean(axis=0))
        scores = prints @ centroid
        if scores.max() < min_score:
            return None
        centroids.append(centroid)
        best.append(int(np.argmax(scores)))
    return None if best[0] == best[1] else np.array(centroids)


def confident_members(
    labels: npt.NDArray[np.int64], members: int, seconds_each: float
) -> list[int]:
    """The members (of ``members``) that confident windows name (``labels``: each window's
    member or -1, from :func:`_labels`; each window ``seconds_each`` of speech) with at least
    :data:`MIN_MEMBER_S` seconds and :data:`MIN_MEMBER_SHARE` of the confident ones, most
    heard first."""
    counts = np.bincount(labels[labels >= 0], minlength=members)
    total = counts.sum()
    enough = [
        m
        for m in np.argsort(-counts)
        if counts[m] * seconds_each >= MIN_MEMBER_S and counts[m] >= MIN_MEMBER_SHARE * total
    ]
    return [int(m) for m in enough]


def _labels(scores: FloatArray, min_score: float, min_margin: float) -> npt.NDArray[np.int64]:
    """Each window's member, or -1 when it names nobody surely."""
    order = np.argsort(-scores, axis=1)
    rows = np.arange(len(scores))
    best = scores[rows, order[:, 0]]
    runner_up = scores[rows, order[:, 1]]
    sure = (best >= min_score) & (best - runner_up >= min_margin)
    return np.where(sure, order[:, 0], -1)


def _smoothed(owner: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """A window whose two neighbours agree with each other against it takes their owner:
    one 1.5 s window is not a turn of its own."""
    out = owner.copy()
    for i in range(1, len(owner) - 1):
        if owner[i - 1] == owner[i + 1] != owner[i]:
            out[i] = owner[i - 1]
    return out


def speech_windows(turns: Sequence[SpeakerTurn], speaker: str, hop: float) -> list[Window]:
    """``speaker``'s speech where nobody else talks, in :data:`WINDOW_S` windows about every
    ``hop`` seconds, spanning each stretch (a stretch shorter than a window is one window of
    its own length, if at least half a window), in time order."""
    others = [(t.start, t.end) for t in turns if t.speaker != speaker]
    windows = []
    for index, turn in enumerate(turns):
        if turn.speaker != speaker:
            continue
        for start, end in spans_without((turn.start, turn.end), others):
            if end - start < WINDOW_S / 2:
                continue
            if end - start <= WINDOW_S:
                windows.append(Window(start, end, index))
                continue
            count = int(np.ceil((end - start - WINDOW_S) / hop)) + 1
            step = (end - start - WINDOW_S) / (count - 1)
            windows += [
                Window(start + i * step, start + i * step + WINDOW_S, index) for i in range(count)
            ]
    return windows


def _owned_span(windows: Sequence[Window], i: int) -> tuple[float, float]:
    """The seconds window ``i`` answers for: from halfway to its neighbour in the same turn
    (or its own edge) to halfway to the next one."""
    w = windows[i]
    before = windows[i - 1] if i > 0 and windows[i - 1].turn == w.turn else None
    after = windows[i + 1] if i + 1 < len(windows) and windows[i + 1].turn == w.turn else None
    start = w.start if before is None else (before.centre + w.centre) / 2
    end = w.end if after is None else (w.centre + after.centre) / 2
    return start, end


def _spread(total: int, most: int) -> list[int]:
    """Up to ``most`` indices of ``range(total)``, evenly spread."""
    if total <= most:
        return list(range(total))
    return sorted({int(i) for i in np.linspace(0, total - 1, most).round()})


def recut(
    turns: Sequence[SpeakerTurn], parts: Mapping[str, Sequence[tuple[float, float, int]]]
) -> tuple[SpeakerTurn, ...]:
    """``turns`` with each split speaker's turns cut between its parts: every moment of such a
    turn goes to the part whose piece is nearest in time (overlapped seconds and the gaps
    between pieces included), labelled ``<speaker>~<part>``."""
    out: list[SpeakerTurn] = []
    for turn in turns:
        pieces = parts.get(turn.speaker)
        if not pieces:
            out.append(turn)
            continue
        out += _cut_turn(turn, sorted(pieces))
    return tuple(sorted(out, key=lambda t: (t.start, t.end, t.speaker)))


def _cut_turn(turn: SpeakerTurn, pieces: Sequence[tuple[float, float, int]]) -> list[SpeakerTurn]:
    inside = [p for p in pieces if p[1] > turn.start and p[0] < turn.end]
    if not inside:
        nearest = min(pieces, key=lambda p: _distance(p, turn.start, turn.end))
        inside = [nearest]
    out, start = [], turn.start
    for piece, following in zip(inside, [*inside[1:], None], strict=True):
        if following is not None and following[2] == piece[2]:
            continue
        end = turn.end if following is None else (piece[1] + following[0]) / 2
        end = min(max(end, start), turn.end)
        if end > start:
            out.append(SpeakerTurn(start, end, f"{turn.speaker}~{piece[2]}"))
        start = end
    return out


def _distance(piece: tuple[float, float, int], start: float, end: float) -> float:
    return max(piece[0] - end, start - piece[1], 0.0)
