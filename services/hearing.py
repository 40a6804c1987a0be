"""A session heard one chunk at a time while it is being recorded (live sessions).

A chunk job hears one *stretch*: the unfinished tail of the previous chunk (from that chunk's
cut) followed by its own audio up to its own cut. A chunk job cannot know that its chunk is the
session's last, so every chunk is heard to its cut, and the finish hears the last chunk's
*coda* (:func:`coda_of`: from its cut to its end), a few seconds, instead of the whole stretch
again.
The cut of a chunk depends on that chunk's audio alone (:func:`cut_point`: the middle of its
last pause near the end), so the jobs of chunk n and chunk n+1 agree on it whatever order they
run in: every moment of the session is heard exactly once, and a word or a turn that the
phone's chunk boundary cut through is heard whole, in the stretch that carries it.

The recogniser hears a stretch with a few seconds of its chunk's audio after the cut (its
*lookahead*, :data:`LOOKAHEAD_S`), keeping only the words said before the cut: Whisper garbles
the last words before the end of its audio, and the tail is in the chunk job's hands anyway.

:func:`hear_stretch` is the verb: transcription with word times, the verifier's second listen,
the diarizer's window embeddings and how sure the VAD was of the speech (the room), all in
seconds from the stretch's start. The diarizer is also given the seconds before the stretch
(its lead-in, from the previous chunk), so that its windows across the stretch's start are
heard whole, as in the whole recording (Resemblyzer uses it only when the stretch's speech
runs across its start). Nothing here reads storage or the database; times become session
times at the finish (:func:`place`), from the chunks' decoded lengths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from services.diarization import (
    SPAN_LEAD_IN_S,
    Diarization,
    Diarizer,
    RoomStats,
    SpanDiarizer,
    SpanVoices,
    diarize_spans,
    hear_speakers,
    room_of,
    span_diarizer,
)
from services.domain import SAMPLE_RATE, Audio, SpeakerHints, TranscriptSegment, Utterance, Word
from services.singlish import Singlish, listen_again
from services.singlish.verification import Verdict
from services.transcription import Transcriber, transcribe

# A chunk's unfinished tail is looked for in its last MAX_CARRY_S seconds: the longest stretch
# of one chunk a job may carry into the next.
MAX_CARRY_S = 8.0
MIN_PAUSE_S = 0.3  # a pause at least this long (beyond the padding) is where a stretch may end
# Silero's onsets come 0.2-0.4 s after Whisper's first word times on the corpus (a soft
# "Hello?" at 6.38 s is speech from 6.75 s at 0.35): a low threshold and padding either side
# keep the cut out of a word's soft edges.
PAUSE_VAD_THRESHOLD = 0.25
PAUSE_PAD_MS = 150
QUIET_FRAME_S = 0.1  # no pause at all: cut at the quietest 100 ms
# Whisper garbles the last words before the end of its audio: a stretch cut in the pause after
# "He's so kiasi," ended "He's ok, I see. He's not" (d3 of the Singlish dev set), heard with the
# 1.3 s after the cut as "He's so kiasi, he won't even try." as the whole recording hears it.
# So a stretch is recognised with up to LOOKAHEAD_S of its chunk's audio after the cut (the
# tail the next stretch carries, which the chunk job has in hand), and keeps only the words
# said before the cut: the next stretch hears the tail's words as its own.
LOOKAHEAD_S = 3.0
UNASSIGNED = ""  # a verdict's speaker until the finish knows who spoke


def cut_point(audio: Audio) -> float:
    """Where the part of a chunk heard with that chunk ends and its tail (carried into the
    next chunk's stretch) begins, in seconds from the chunk's start: the middle of the last
    pause of at least MIN_PAUSE_S in the chunk's last MAX_CARRY_S (a pause at its very end
    included); the quietest 100 ms there when the VAD hears no pause (or no speech: soft speech
    it misses may still run on). Depends on ``audio`` alone."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    duration = audio.duration
    begin = max(0.0, duration - MAX_CARRY_S)
    tail = np.ascontiguousarray(audio.slice(begin, duration).samples, np.float32)
    options = VadOptions(
        threshold=PAUSE_VAD_THRESHOLD,
        min_silence_duration_ms=int(MIN_PAUSE_S * 1000),
        speech_pad_ms=PAUSE_PAD_MS,
        min_speech_duration_ms=100,
    )
    stamps = get_speech_timestamps(tail, options) if len(tail) >= 512 else []
    if not stamps:  # the VAD heard nobody, yet soft speech may run on into the next chunk
        return begin + _quietest(tail)
    edges = [0, *(x for s in stamps for x in (s["start"], s["end"])), len(tail)]
    pauses = [
        (a, b)
        for a, b in zip(edges[::2], edges[1::2], strict=True)
        if (b - a) / SAMPLE_RATE >= MIN_PAUSE_S
    ]
    if pauses:
        a, b = pauses[-1]
        return begin + (a + b) / 2 / SAMPLE_RATE
    return begin + _quietest(tail)


def _quietest(samples: np.ndarray) -> float:
    """The middle of the quietest QUIET_FRAME_S frame of ``samples``, in seconds."""
    frame = int(QUIET_FRAME_S * SAMPLE_RATE)
    usable = len(samples) // frame * frame
    if usable == 0:
        return len(samples) / SAMPLE_RATE
    energy = np.square(samples[:usable]).reshape(-1, frame).sum(axis=1)
    return (int(np.argmin(energy)) + 0.5) * QUIET_FRAME_S


@dataclass(frozen=True)
class Stretch:
    """The audio one chunk job hears, and where it lies in the chunk's own seconds: from
    ``start`` (negative: the previous chunk's carried tail) to ``end``; ``lead_in``: up to
    SPAN_LEAD_IN_S of the session's audio just before it, the diarizer's context (None for
    a session's first); ``lookahead``: up to LOOKAHEAD_S of the chunk's audio just after it,
    the recogniser's context (empty when the stretch ends with its chunk)."""

    audio: Audio
    start: float
    end: float
    lead_in: Audio | None = None
    lookahead: Audio = field(default_factory=lambda: Audio(np.zeros(0, np.float32)))


def stretch_of(previous: Audio | None, own: Audio, *, final: bool) -> Stretch:
    """The stretch of chunk ``own``: the tail of ``previous`` (the chunk before it, None for
    the first) from its cut, then ``own`` up to its cut, or to its end when ``final``."""
    carried, lead_in = Audio(np.zeros(0, np.float32)), None
    if previous is not None:
        cut = cut_point(previous)
        carried = previous.slice(cut, previous.duration)
        lead_in = previous.slice(cut - SPAN_LEAD_IN_S, cut)
    end = own.duration if final else cut_point(own)
    own_part = own.slice(0.0, end)
    samples = np.concatenate([carried.samples, own_part.samples]).astype(np.float32, copy=False)
    lookahead = own.slice(own_part.duration, own_part.duration + LOOKAHEAD_S)
    return Stretch(Audio(samples), -carried.duration, own_part.duration, lead_in, lookahead)


def coda_of(last: Audio) -> Stretch | None:
    """The stretch a session's last chunk leaves after its chunk job's hearing: from its cut
    to its end (None when it ends in the cut's pause), with the seconds before the cut as the
    diarizer's lead-in. Depends on ``last`` alone, as the cut does."""
    cut = cut_point(last)
    if round((last.duration - cut) * SAMPLE_RATE) <= 0:
        return None
    lead_in = last.slice(cut - SPAN_LEAD_IN_S, cut) if cut > 0 else None
    return Stretch(last.slice(cut, last.duration), cut, last.duration, lead_in)


@dataclass(frozen=True)
class ChunkHearing:
    """What a chunk job heard of its stretch; times in seconds from the stretch's start.

    ``start``/``end``: the stretch in the chunk's own seconds (see :class:`Stretch`);
    ``verdicts``: the verifier's, their speaker :data:`UNASSIGNED` until the finish;
    ``voices``: what the diarizer keeps for clustering (None: the diarizer needs the whole
    recording); ``room``: how sure the VAD was of the speech (for the room-aware default)."""

    start: float
    end: float
    segments: tuple[TranscriptSegment, ...]
    verdicts: tuple[Verdict, ...]
    voices: SpanVoices | None
    room: RoomStats


def hear_stretch(
    stretch: Stretch,
    *,
    transcriber: Transcriber,
    singlish: Singlish,
    diarizer: Diarizer,
    room_before: RoomStats = RoomStats(),
) -> ChunkHearing:
    """Hear one stretch: words with times and probabilities (hotwords as the transcriber
    has them), the verifier's verdicts on them, and the embeddings of the diarizer chosen for
    the room heard so far (``room_before``: the session's other stretches) and in this one."""
    audio = stretch.audio
    segments = recognise(stretch, transcriber)
    utterances = [Utterance(UNASSIGNED, s.start, s.end, s.words) for s in segments]
    verdicts = listen_again(audio, utterances, singlish)
    room, voices = listen_for_voices(audio, diarizer, room_before, stretch.lead_in)
    return ChunkHearing(stretch.start, stretch.end, segments, verdicts, voices, room)


def recognise(stretch: Stretch, transcriber: Transcriber) -> tuple[TranscriptSegment, ...]:
    """The words said in ``stretch``, recognised with its lookahead after it (see
    LOOKAHEAD_S): those whose middle lies before the stretch's end, times kept inside it."""
    if not len(stretch.lookahead.samples):
        return transcribe(stretch.audio, transcriber)
    heard = np.concatenate([stretch.audio.samples, stretch.lookahead.samples])
    cut = stretch.audio.duration
    segments = transcribe(Audio(heard.astype(np.float32, copy=False)), transcriber, until=cut)
    return tuple(s for s in (_before(s, cut) for s in segments) if s)


def _before(segment: TranscriptSegment, end: float) -> TranscriptSegment | None:
    """``segment``'s words whose middle lies before ``end`` seconds, none ending after it."""
    kept = tuple(
        replace(w, end=min(w.end, end)) for w in segment.words if (w.start + w.end) / 2 < end
    )
    if not kept:
        return None
    if len(kept) == len(segment.words) and segment.end <= end:
        return segment
    return TranscriptSegment(kept[0].start, kept[-1].end, "".join(w.text for w in kept), kept)


def listen_for_voices(
    audio: Audio,
    diarizer: Diarizer,
    room_before: RoomStats = RoomStats(),
    lead_in: Audio | None = None,
) -> tuple[RoomStats, SpanVoices | None]:
    """The room of one stretch, and what the diarizer chosen for the room heard so far
    (``room_before``) and in it keeps for clustering (None: it needs whole recordings),
    given ``lead_in`` (the audio before the stretch) as context."""
    room = room_of(audio)
    chosen = span_diarizer(diarizer, room_before + room)
    return room, None if chosen is None else chosen.hear_span(audio, lead_in)


def voices_as(
    voices: SpanVoices | None,
    diarizer: SpanDiarizer,
    audio: Callable[[], tuple[Audio | None, Audio]],
) -> SpanVoices:
    """A stretch's voices as ``diarizer`` keeps them: the stored ones, or taken again from
    its ``audio`` (its lead-in and itself) when the chunk job chose the other backend for
    the room it had heard."""
    if voices is not None and voices.backend == diarizer.name:
        return voices
    lead_in, stretch = audio()
    return diarizer.hear_span(stretch, lead_in)


def chunk_stretches(chunks: Sequence[Audio]) -> list[tuple[float, Stretch]]:
    """A recording's chunks as a live session hears them: (session second the chunk starts,
    its stretch), each chunk to its cut, then the last chunk's coda (heard by the finish)."""
    out, start = [], 0.0
    for i, chunk in enumerate(chunks):
        previous = chunks[i - 1] if i else None
        out.append((start, stretch_of(previous, chunk, final=False)))
        start += chunk.duration
    coda = coda_of(chunks[-1]) if chunks else None
    if coda is not None:
        out.append((start - chunks[-1].duration, coda))
    return out


def diarize_chunks(
    chunks: Sequence[Audio], diarizer: Diarizer, hints: SpeakerHints = SpeakerHints()
) -> Diarization:
    """Who spoke when in a recording heard a chunk at a time, as a live session's chunk jobs
    and finish do it (the benchmarks score this against the whole-recording diarization)."""
    stretches = chunk_stretches(chunks)
    room, heard = RoomStats(), []
    for start, stretch in stretches:
        stretch_room, voices = listen_for_voices(stretch.audio, diarizer, room, stretch.lead_in)
        room += stretch_room
        heard.append((start + stretch.start, stretch, voices))
    chosen = span_diarizer(diarizer, room)
    if chosen is None:
        whole = Audio(np.concatenate([c.samples for c in chunks]).astype(np.float32))
        return hear_speakers(whole, diarizer, hints)
    spans = [
        (offset, voices_as(voices, chosen, partial(_audio_of, stretch)))
        for offset, stretch, voices in heard
    ]
    duration = sum(c.duration for c in chunks)
    return diarize_spans(spans, duration, chosen, hints)


# --- the finish: stretches placed on the session's timeline -----------------------------


@dataclass(frozen=True)
class Placed:
    """A chunk's hearing at its place: ``offset`` = the session second its stretch starts."""

    offset: float
    hearing: ChunkHearing


def place(hearings: Sequence[tuple[float, ChunkHearing]]) -> tuple[Placed, ...]:
    """Each hearing with its stretch's session offset, from ``(chunk's session start,
    hearing)`` pairs (the chunk's start: the decoded lengths of the chunks before it)."""
    return tuple(Placed(start + h.start, h) for start, h in sorted(hearings, key=_by_start))


def _by_start(pair: tuple[float, ChunkHearing]) -> float:
    return pair[0] + pair[1].start


def session_segments(placed: Sequence[Placed]) -> tuple[TranscriptSegment, ...]:
    """Every stretch's segments in session seconds, in time order."""
    return tuple(_moved_segment(s, p.offset) for p in placed for s in p.hearing.segments)


def session_verdicts(
    placed: Sequence[Placed], utterances: Sequence[Utterance]
) -> tuple[Verdict, ...]:
    """Every stretch's verdicts in session seconds, each given the speaker of the utterance
    that holds it (one split between two speakers holds in neither, and decides nothing)."""
    verdicts = []
    for p in placed:
        for v in p.hearing.verdicts:
            start, end = v.start + p.offset, v.end + p.offset
            holder = next(
                (u for u in utterances if u.start - 1e-6 <= start and end <= u.end + 1e-6), None
            )
            speaker = UNASSIGNED if holder is None else holder.speaker
            verdicts.append(replace(v, start=start, end=end, speaker=speaker))
    return tuple(verdicts)


def session_room(placed: Sequence[Placed]) -> RoomStats:
    return sum((p.hearing.room for p in placed), RoomStats())


def _moved_segment(segment: TranscriptSegment, by: float) -> TranscriptSegment:
    return TranscriptSegment(
        segment.start + by,
        segment.end + by,
        segment.text,
        tuple(Word(w.start + by, w.end + by, w.text, w.probability) for w in segment.words),
    )


def _audio_of(stretch: Stretch) -> tuple[Audio | None, Audio]:
    return stretch.lead_in, stretch.audio
