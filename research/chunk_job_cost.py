"""``python -m research.chunk_job_cost [MINUTES]``: where a live chunk job's CPU goes, part by
part, against faster-whisper alone on the same audio, in one process (issue 16).

The bench's built session of MINUTES (default 5) in 30 s m4a chunks (``bench.inputs``) is
decoded, cut into the product's stretches (``services.hearing.chunk_stretches``, codas left
out: a chunk job never hears one) and each stretch heard part by part as
``services.hearing.hear_stretch`` hears it, each part's CPU seconds (every thread, the
process's ``process_time``) and Whisper's encoder passes added up: the cuts (``cut_point``
on each chunk, twice: the chunk's own job and the next one's), recognition (``recognise``),
the verifier's second listen, the room (``room_of``), the diarizer's window embeddings
(``hear_span``). Then the whole recording recognised at once, two ways: as
``bench.probe``'s baseline does (the worker's model and options, no hotwords,
faster-whisper's default temperatures), and with the product's options
(``FasterWhisperTranscriber.options``: hotwords, temperature 0, token budget). Printed: CPU
seconds per audio minute of each, and the encoder passes."""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import Any, cast

import numpy as np

import services.hearing as hearing
from bench.inputs import built_session
from config import Settings
from processor import load_engines
from research.coda_cost import _counting_encoder
from services.audio import decode_audio
from services.diarization import room_of, span_diarizer
from services.domain import Utterance
from services.singlish import listen_again


def _timed(spent: dict[str, float], part: str, work: Any, *args: Any, **kwargs: Any) -> Any:
    started = time.process_time()
    out = work(*args, **kwargs)
    spent[part] += time.process_time() - started
    return out


def main(minutes: float) -> None:
    engines = load_engines(Settings())
    transcriber = cast(Any, engines.transcriber)
    chunks = [decode_audio(p) for p in built_session(minutes).chunks]
    audio_min = sum(c.duration for c in chunks) / 60
    whole = np.concatenate([c.samples for c in chunks]).astype(np.float32)
    spent: dict[str, float] = defaultdict(float)
    passes = _counting_encoder(transcriber.whisper)
    encoded: dict[str, int] = {}

    def recognise_whole(samples: np.ndarray, **options: Any) -> int:
        segments, _ = transcriber.whisper.transcribe(samples, **options)
        return sum(len(s.words or ()) for s in segments)

    baseline = {
        "language": transcriber.language,
        "beam_size": transcriber.beam_size,
        "word_timestamps": True,
        "vad_filter": transcriber.vad_filter,
    }
    recognise_whole(whole[: 16000 * 30], **baseline)  # warm-up
    for chunk in chunks:
        _timed(spent, "cuts (x2)", hearing.cut_point, chunk)
        _timed(spent, "cuts (x2)", hearing.cut_point, chunk)
    stretches = [s for _, s in hearing.chunk_stretches(chunks) if len(s.lookahead.samples)]
    room = hearing.RoomStats()
    passes["encode"] = 0
    for stretch in stretches:
        segments = _timed(spent, "recognise", hearing.recognise, stretch, transcriber)
        utterances = [Utterance("", s.start, s.end, s.words) for s in segments]
        _timed(spent, "second listen", listen_again, stretch.audio, utterances, engines.singlish)
        stretch_room = _timed(spent, "room", room_of, stretch.audio)
        room = room + stretch_room
        chosen = span_diarizer(engines.diarizer, room)
        if chosen is not None:
            _timed(spent, "window embeddings", chosen.hear_span, stretch.audio, stretch.lead_in)
    encoded["recognise"] = passes["encode"]
    heard = sum(s.audio.duration for s in stretches) / 60
    ways = {"baseline": baseline, "product": transcriber.options(len(whole) / 16000)}
    for way, options in ways.items():
        passes["encode"] = 0
        _timed(spent, f"(whole: {way} options)", recognise_whole, whole, **options)
        encoded[f"(whole: {way} options)"] = passes["encode"]
    print(f"{minutes:g} min: {len(stretches)} stretches, {heard:.2f} of {audio_min:.2f} audio min")
    job = sum(v for k, v in spent.items() if not k.startswith("("))
    for part, seconds in [*spent.items(), ("chunk jobs in all", job)]:
        n = f"  {encoded[part]} encoder passes" if part in encoded else ""
        print(f"  {part:28s} {seconds:7.2f} CPU s  {seconds / audio_min:6.2f} per audio min{n}")
    print(f"  chunk jobs / whole baseline: {job / spent['(whole: baseline options)']:.2f}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0)
