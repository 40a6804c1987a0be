"""From speaker-attributed utterances to what the app shows: corrected text, per-speaker
target-word counts, an emotion per segment, and a summary per speaker."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services import singlish
from services.domain import (
    Emotion,
    ProgressCallback,
    Recording,
    SpeakerTurn,
    Utterance,
    Word,
    no_progress,
)
from services.emotion import EmotionClassifier, classify_emotions
from services.singlish.confidence import Rating, counts
from services.singlish.dictionary import Corrections
from services.singlish.occurrences import Occurrence, count_occurrences
from services.singlish.verification import Verdict
from services.speech_emotion import SpeechEmotionClassifier, hear_emotions


@dataclass(frozen=True)
class AnalysedSegment:
    """One utterance as the app shows it, with the evidence its counts come from: the
    recognised words, the verifier's verdicts on them and the target words found."""

    speaker: str
    start: float
    end: float
    text: str
    corrected_text: str
    emotion: Emotion
    words: tuple[Word, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    occurrences: tuple[Occurrence, ...] = ()


@dataclass(frozen=True)
class SpeakerSummary:
    label: str
    talk_time_s: float
    segment_count: int
    word_counts: Mapping[str, int]
    dominant_emotion: str | None


@dataclass(frozen=True)
class SessionAnalysis:
    segments: tuple[AnalysedSegment, ...]
    speakers: tuple[SpeakerSummary, ...]
    min_confidence: float = 0.0  # the operating point the speakers' counts were made at

    def counted(self, occurrence: Occurrence) -> bool:
        """Whether the occurrence is in the speakers' counts (no human has judged it yet)."""
        return counts(occurrence.confidence, None, self.min_confidence)

    @property
    def occurrences(self) -> tuple[Occurrence, ...]:
        """The evidence every count is derived from, in transcript order."""
        return tuple(o for segment in self.segments for o in segment.occurrences)


def analyse(
    utterances: Sequence[Utterance],
    turns: Sequence[SpeakerTurn],
    corrections: Corrections,
    emotion_classifier: EmotionClassifier,
    on_progress: ProgressCallback = no_progress,
    verdicts: Sequence[Verdict] = (),
    rating: Rating | None = None,
    speech: tuple[Recording, SpeechEmotionClassifier] | None = None,
    known: Mapping[str, Emotion] | None = None,
) -> SessionAnalysis:
    """Correct, count and tag every utterance; summarise every speaker found in ``turns``
    (a speaker who said no recognisable word still appears, with zero counts). Counts come
    from the detected occurrences only, and the corrected text shows the same rewrites;
    ``verdicts`` (:func:`services.singlish.listen_again`) decide the verify rules; each
    utterance is read by :func:`services.singlish.read`, its occurrences rated by ``rating``
    (the speakers' counts are of those it counts: all when None). ``known``: text emotions
    already made for these texts (never with ``speech``). With ``speech`` (the session's
    audio and a speech emotion model), each emotion also hears how the utterance was said
    (:func:`services.speech_emotion.hear_emotions`).

    Only the speakers of ``turns`` are summarised, so each has talk time and a sample clip:
    utterances of any other speaker (words recognised where diarization heard nobody, given
    the placeholder ``SPEAKER_00`` when there are no turns at all) are left out, as there is
    no voice to play for them and nobody to credit their words to."""
    heard = {t.speaker for t in turns}
    kept = [u for u in utterances if u.text and u.speaker in heard]
    texts = [u.text for u in kept]
    # the same text always gets the same emotion: texts ``known`` (a session processed
    # again) and repeats are not classified again
    known = known or {}
    fresh = [t for t in dict.fromkeys(texts) if t not in known]
    made = dict(zip(fresh, classify_emotions(fresh, emotion_classifier, on_progress), strict=True))
    emotions = tuple(known[t] if t in known else made[t] for t in texts)
    if speech is not None:
        audio, speech_emotion_classifier = speech
        clips = [audio.slice(u.start, u.end) for u in kept]
        emotions = hear_emotions(emotions, clips, speech_emotion_classifier)
    segments = []
    for u, emotion in zip(kept, emotions, strict=True):
        reading = singlish.read(u, corrections, verdicts, rating)
        segments.append(
            AnalysedSegment(
                u.speaker,
                u.start,
                u.end,
                u.text,
                reading.corrected_text,
                emotion,
                words=u.words,
                verdicts=reading.verdicts,
                occurrences=reading.occurrences,
            )
        )
    least = rating.min_confidence if rating is not None else 0.0
    occurrences = [o for s in segments for o in s.occurrences if counts(o.confidence, None, least)]
    return SessionAnalysis(
        segments=tuple(segments),
        speakers=_summaries(segments, turns, count_occurrences(occurrences)),
        min_confidence=least,
    )


def _summaries(
    segments: Sequence[AnalysedSegment],
    turns: Sequence[SpeakerTurn],
    counts: Mapping[str, Counter[str]],
) -> tuple[SpeakerSummary, ...]:
    talk_time: dict[str, float] = defaultdict(float)
    for turn in turns:
        talk_time[turn.speaker] += turn.duration
    per_speaker = Counter(s.speaker for s in segments)
    return tuple(
        SpeakerSummary(
            label=label,
            talk_time_s=round(talk_time[label], 3),
            segment_count=per_speaker[label],
            word_counts=dict(sorted(counts.get(label, Counter()).items())),
            dominant_emotion=dominant_emotion([s for s in segments if s.speaker == label]),
        )
        for label in sorted(talk_time)
    )


def dominant_emotion(segments: Sequence[AnalysedSegment]) -> str | None:
    """The label with the most probability mass over the speaker's segments, weighted by
    each segment's length, so one long angry rant outweighs two short neutral words."""
    mass: dict[str, float] = defaultdict(float)
    for segment in segments:
        weight = max(segment.end - segment.start, 0.1)
        for label, score in segment.emotion.scores.items():
            mass[label] += weight * score
    return max(mass, key=mass.__getitem__) if mass else None
