"""``python -m bench quality``: how right the pipeline is, on the shared corpus.

* ``der``: DER and JER (pyannote.metrics) per group of conversations, never pooled
  across them (``bench/farfield.py``: ``clean``, far-field ``tuned-on``, far-field
  ``never-tuned``), with the speaker count given (oracle) and estimated (automatic), with
  the standard ±0.25 s collar (pyannote's ``collar=0.5``: the collar's total width) and
  with none. Scored inside the reference UEM where there is one, else over the whole
  file. Overlapped speech is scored. Per group and source: the one-speaker baseline (the
  reference's own speech, all one label) and the diarization RTF.
* ``wer``: word error rate (jiwer) of the transcriber on ``corpus/asr_en``, after one
  normalisation of both sides: lower case, numbers spelled out, punctuation removed.
* ``emotion``: accuracy of the emotion classifier on GoEmotions dev, single-label rows
  only, their label mapped to the 7 labels by ``ekman_mapping.json``.
* ``singlish``: target-word count precision/recall per speaker on the generated Singlish
  dev set (``shared/singlish/make.py``), scored by ``shared/singlish/score.py``.

The models are the worker's (``load_diarizer`` etc. on the default settings, or those the
environment sets); they are loaded once, in this process.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.farfield import GROUPS, der_groups
from bench.inputs import CACHE_DIR, SessionInput
from bench.report import CORPUS, SHARED, BenchError, Stopwatch, console, load_average, table
from config import Settings
from services.domain import EMOTION_LABELS, Audio, SpeakerHints, SpeakerTurn

PARTS = ("der", "wer", "emotion", "singlish")
SINGLISH_SETS = ("dev", "unseen")  # tuned on / never tuned on (bench/singlish_unseen.py)
SPEAKER_COUNTS = ("oracle", "auto")
PATHS = ("live", "batch")
PHONE_CHUNK_S = 30.0  # the app uploads a chunk about every 30 s
COLLARS = {"±0.25 s": 0.5, "none": 0.0}  # label -> pyannote collar (total width, seconds)
ONE_SPEAKER = "one speaker"  # the baseline's "speaker count": perfect speech regions, one label
ASR_DIR = CORPUS / "asr_en"
GOEMOTIONS = CORPUS / "text_emotion" / "goemotions"
SINGLISH = SHARED / "singlish"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument(
        "--limit",
        type=int,
        help="at most this many files per part (per group for der; rows for emotion)",
    )
    parser.add_argument(
        "--groups",
        nargs="+",
        choices=list(GROUPS),
        help="der: only these groups (default: all; see bench/farfield.py)",
    )
    parser.add_argument(
        "--singlish-sets",
        nargs="+",
        choices=SINGLISH_SETS,
        default=list(SINGLISH_SETS),
        help="singlish: only these sets (default: both, the tuned-on and the never-tuned)",
    )
    parser.add_argument(
        "--speaker-counts",
        nargs="+",
        choices=SPEAKER_COUNTS,
        default=list(SPEAKER_COUNTS),
        help="singlish: with the true speaker count, the estimated one, or both (default)",
    )
    parser.add_argument(
        "--path",
        choices=PATHS,
        default="live",
        help="live (default, the product's: each 30 s chunk heard as its chunk job hears it, "
        "then the finish) or batch (the whole recording at once, LIVE_PROCESSING=false)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings()
    results: dict[str, Any] = {"load_average_start": load_average()}
    results["path"] = args.path
    for part in args.parts:
        console.print(f"[bold]{part}[/bold]: load {load_average()}")
        with Stopwatch() as sw:
            if part == "der":
                results[part] = _der(settings, args.limit, args.groups, args.path)
            elif part == "singlish":
                results[part] = _singlish(
                    settings, args.limit, args.singlish_sets, args.speaker_counts, args.path
                )
            elif part == "wer":
                results[part] = _wer(settings, args.limit, args.path)
            else:
                results[part] = _emotion(settings, args.limit)
        results[part]["seconds"] = round(sw.seconds, 1)
    results["load_average_end"] = load_average()
    return results


# --- diarization ------------------------------------------------------------------------------


def chunks_of(audio: Audio, seconds: float = PHONE_CHUNK_S) -> list[Audio]:
    """A recording as a phone uploads it: consecutive chunks of ``seconds``."""
    step = round(seconds * audio.sample_rate)
    return [Audio(audio.samples[i : i + step]) for i in range(0, len(audio.samples), step)]


def _der(
    settings: Settings, limit: int | None, groups: list[str] | None, path: str = "live"
) -> dict[str, Any]:
    from services.diarization import load_diarizer

    with Stopwatch() as build:  # the synthetic rooms, on first use (then read from the cache)
        sets = der_groups(groups, limit)
    with Stopwatch() as load:
        diarizer = load_diarizer(settings)
        _warm_up(diarizer, next(c for cs in sets.values() for c in cs))
    tally = DerTally()
    files = [
        _der_file(conversation, diarizer, tally, path)
        for conversations in sets.values()
        for conversation in conversations
    ]
    return {
        "files": files,
        "total": tally.totals("all"),
        "groups": {
            group: {
                **tally.summary(group),
                "sources": {
                    source: tally.summary(f"{group} / {source}")
                    for source in dict.fromkeys(c.tags["source"] for c in conversations)
                },
            }
            for group, conversations in sets.items()
            if conversations
        },
        "collars": COLLARS,
        "build_s": round(build.seconds, 1),
        "load_and_warm_up_s": round(load.seconds, 1),
    }


def _warm_up(diarizer: Any, conversation: SessionInput) -> None:
    """One unscored, untimed run on 10 s, so that lazy loading is not charged to the first
    file's RTF."""
    from services.audio import decode_audio
    from services.diarization import diarize

    diarize(decode_audio(conversation.chunks[0]).slice(0.0, 10.0), diarizer, SpeakerHints())


def _der_file(
    conversation: SessionInput, diarizer: Any, tally: DerTally, path: str = "live"
) -> dict[str, Any]:
    """Diarize one conversation with the true count and without; score both and the
    one-speaker baseline into ``tally`` under all, its group and its group / source."""
    from services.audio import decode_audio
    from services.diarization import diarize
    from services.hearing import diarize_chunks

    group, source = conversation.tags["group"], conversation.tags["source"]
    scopes = ("all", group, f"{group} / {source}")
    audio = decode_audio(conversation.chunks[0])
    reference, uem = _reference(conversation, audio)
    row: dict[str, Any] = {"name": conversation.name, "group": group, "source": source}
    row |= {"speakers": conversation.speakers, "audio_s": round(audio.duration, 2)}
    diarize_s = 0.0
    for count, hints in (
        ("oracle", SpeakerHints(num_speakers=conversation.speakers)),
        ("auto", SpeakerHints()),
    ):
        with Stopwatch() as sw:
            if path == "live":
                turns = diarize_chunks(chunks_of(audio), diarizer, hints).turns
            else:
                turns = diarize(audio, diarizer, hints)
        diarize_s += sw.seconds
        row[f"{count}_speakers_found"] = len({t.speaker for t in turns})
        row |= tally.score(scopes, count, reference, annotation_of(turns, conversation.name), uem)
    row |= tally.score(scopes, ONE_SPEAKER, reference, _one_speaker(reference), uem)
    tally.timed(scopes, audio.duration, diarize_s)
    row["diarize_s"] = round(diarize_s, 3)
    return row


class DerTally:
    """pyannote.metrics accumulators per scope (all files, a group, a group's source) and
    speaker count, and the audio and diarization seconds behind them."""

    def __init__(self) -> None:
        self._metrics: dict[str, dict[str, dict[str, Any]]] = {}
        self._seconds: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])

    def score(
        self, scopes: Sequence[str], count: str, reference: Any, hypothesis: Any, uem: Any
    ) -> dict[str, float]:
        """Score one file into every scope; its own figures as ``{count}_{metric}``."""
        row = {}
        for scope in scopes:
            by_count = self._metrics.setdefault(scope, _diarization_metrics())
            for name, metric in by_count[count].items():
                row[f"{count}_{name}"] = round(metric(reference, hypothesis, uem=uem), 4)
        return row

    def timed(self, scopes: Sequence[str], audio_s: float, diarize_s: float) -> None:
        for scope in scopes:
            self._seconds[scope][0] += 1
            self._seconds[scope][1] += audio_s
            self._seconds[scope][2] += diarize_s

    def totals(self, scope: str) -> dict[str, dict[str, float]]:
        return {
            count: {name: round(abs(metric), 4) for name, metric in by_name.items()}
            for count, by_name in self._metrics[scope].items()
        }

    def summary(self, scope: str) -> dict[str, Any]:
        """Files, audio and diarization seconds, RTF (diarization seconds per audio second,
        per run: each file is diarized twice) and the totals of ``scope``."""
        files, audio_s, diarize_s = self._seconds[scope]
        return {
            "files": int(files),
            "audio_s": round(audio_s, 1),
            "diarize_s": round(diarize_s, 2),
            "rtf": round(diarize_s / (2 * audio_s), 4) if audio_s else None,
            "total": self.totals(scope),
        }


def _diarization_metrics() -> dict[str, dict[str, Any]]:
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

    return {
        count: {
            f"{kind} collar {label}": cls(collar=collar, skip_overlap=False)
            for label, collar in COLLARS.items()
            for kind, cls in (("DER", DiarizationErrorRate), ("JER", JaccardErrorRate))
        }
        for count in ("oracle", "auto", ONE_SPEAKER)
    }


def _reference(conversation: SessionInput, audio: Audio) -> tuple[Any, Any]:
    """The RTTM as an Annotation, and the UEM (the file's, else the whole recording)."""
    from pyannote.core import Annotation, Segment, Timeline

    assert conversation.rttm is not None
    reference = Annotation(uri=conversation.name)
    for line in conversation.rttm.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            reference[Segment(start, start + duration)] = fields[7]
    spans = [Segment(0.0, audio.duration)]
    if conversation.uem is not None:
        spans = [
            Segment(float(f[2]), float(f[3]))
            for f in (line.split() for line in conversation.uem.read_text().splitlines())
            if len(f) >= 4
        ]
    return reference, Timeline(spans, uri=conversation.name)


def _one_speaker(reference: Any) -> Any:
    """The baseline: the reference's own speech regions, all labelled one speaker."""
    from pyannote.core import Annotation

    baseline = Annotation(uri=reference.uri)
    for segment in reference.get_timeline().support():
        baseline[segment] = "one"
    return baseline


def annotation_of(turns: Sequence[SpeakerTurn], uri: str) -> Any:
    from pyannote.core import Annotation, Segment

    hypothesis = Annotation(uri=uri)
    for i, turn in enumerate(turns):
        hypothesis[Segment(turn.start, turn.end), i] = turn.speaker
    return hypothesis


# --- ASR --------------------------------------------------------------------------------------


def _wer(settings: Settings, limit: int | None, path: str = "live") -> dict[str, Any]:
    import jiwer

    from services.audio import decode_audio
    from services.hearing import chunk_stretches
    from services.transcription import load_transcriber, transcribe

    transcriber = load_transcriber(settings)
    by_folder: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    files = []
    for wav, reference in asr_pairs()[:limit]:
        audio = decode_audio(wav)
        if path == "live":  # the words each chunk job hears, in order
            pieces = [s.audio for _, s in chunk_stretches(chunks_of(audio))]
        else:
            pieces = [audio]
        segments = [s for piece in pieces for s in transcribe(piece, transcriber)]
        hypothesis = normalise(" ".join(s.text for s in segments))
        refs, hyps = by_folder[wav.parent.name]
        refs.append(normalise(reference))
        hyps.append(hypothesis)
        files.append({"file": str(wav.relative_to(ASR_DIR)), "hyp": hypothesis})
    folders = {name: _word_errors(jiwer, refs, hyps) for name, (refs, hyps) in by_folder.items()}
    all_refs = [r for refs, _ in by_folder.values() for r in refs]
    all_hyps = [h for _, hyps in by_folder.values() for h in hyps]
    return {"folders": folders, "total": _word_errors(jiwer, all_refs, all_hyps), "files": files}


def asr_pairs() -> list[tuple[Path, str]]:
    """(wav, reference text) for every ``asr_en`` recording with a plain transcript: a
    ``.txt`` of the same name (``_16k`` dropped) or an STM."""
    pairs = []
    for wav in sorted(ASR_DIR.glob("*/*.wav")):
        txt = wav.with_name(wav.stem.removesuffix("_16k") + ".txt")
        stm = wav.with_suffix(".stm")
        if txt.exists():
            pairs.append((wav, txt.read_text()))
        elif stm.exists():
            lines = (line.split(maxsplit=5) for line in stm.read_text().splitlines())
            pairs.append((wav, " ".join(f[5] for f in lines if len(f) == 6)))
    return pairs


def _word_errors(jiwer: Any, refs: list[str], hyps: list[str]) -> dict[str, Any]:
    out = jiwer.process_words(refs, hyps)
    return {
        "wer": round(out.wer, 4),
        "ref_words": sum(len(r.split()) for r in refs),
        "substitutions": out.substitutions,
        "deletions": out.deletions,
        "insertions": out.insertions,
        "files": len(refs),
    }


_ONES = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    *("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def normalise(text: str) -> str:
    """Lower case; integers below 1000 spelled out (Whisper writes "10 of clubs" for "ten
    of clubs"); everything but letters, digits and inner apostrophes becomes a space."""
    text = re.sub(r"\d+", lambda m: _spell(int(m[0])), text.lower().replace("-", " "))
    return " ".join(re.findall(r"[a-z0-9]+(?:'[a-z]+)*", text))


def _spell(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = "" if n % 100 == 0 else " " + _spell(n % 100)
        return f"{_ONES[n // 100]} hundred{rest}"
    return str(n)


# --- emotion ----------------------------------------------------------------------------------


def _emotion(settings: Settings, limit: int | None) -> dict[str, Any]:
    from services.emotion import classify_emotions, load_emotion_classifier

    rows = goemotions_dev()[:limit]
    classifier = load_emotion_classifier(settings)
    predicted = [e.label for e in classify_emotions([text for text, _ in rows], classifier)]
    gold = [label for _, label in rows]
    correct = sum(p == g for p, g in zip(predicted, gold, strict=True))
    per_label = {}
    for label in EMOTION_LABELS:
        tp = sum(p == g == label for p, g in zip(predicted, gold, strict=True))
        n_gold, n_pred = gold.count(label), predicted.count(label)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"n": n_gold, "recall": round(recall, 4), "f1": round(f1, 4)}
    majority = Counter(gold).most_common(1)[0]
    return {
        "rows": len(rows),
        "accuracy": round(correct / len(rows), 4),
        "macro_f1": round(sum(v["f1"] for v in per_label.values()) / len(per_label), 4),
        "majority_class": majority[0],
        "majority_accuracy": round(majority[1] / len(rows), 4),
        "per_label": per_label,
    }


def goemotions_dev() -> list[tuple[str, str]]:
    """(text, one of the 7 labels) for the dev rows that carry exactly one GoEmotions label."""
    names = (GOEMOTIONS / "labels.txt").read_text().split()
    mapping = json.loads((GOEMOTIONS / "ekman_mapping.json").read_text())
    to_seven = {fine: coarse for coarse, fines in mapping.items() for fine in fines}
    to_seven["neutral"] = "neutral"
    rows = []
    with (GOEMOTIONS / "dev.tsv").open(newline="") as file:
        for text, labels, *_ in csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE):
            ids = labels.split(",")
            if len(ids) == 1:
                rows.append((text, to_seven[names[int(ids[0])]]))
    return rows


# --- Singlish target words --------------------------------------------------------------------


def _singlish(
    settings: Settings,
    limit: int | None,
    names: Sequence[str],
    counts: Sequence[str],
    path: str = "live",
) -> dict[str, Any]:
    """Both Singlish sets, each scored on its own (never pooled): ``dev`` (what the dictionary
    and rules are tuned on) and ``unseen`` (what they never are)."""
    from bench.singlish_unseen import singlish_unseen_set

    sets = {"dev": singlish_dev_set, "unseen": singlish_unseen_set}
    models = _singlish_models(settings)
    results: dict[str, Any] = {}
    for name in names:
        with Stopwatch() as sw:
            results[name] = _singlish_set(settings, models, sets[name](), limit, counts, path)
        results[name]["seconds"] = round(sw.seconds, 1)
    return {"sets": results}


def _singlish_models(settings: Settings) -> Any:
    from processor import load_engines

    return load_engines(settings)


def _singlish_set(
    settings: Settings,
    models: Any,
    ref_dir: Path,
    limit: int | None,
    counts: Sequence[str],
    path: str = "live",
) -> dict[str, Any]:
    conversations = list(json.loads((ref_dir / "manifest.json").read_text())["conversations"])
    conversations = conversations[:limit]
    hyp_dirs = {count: ref_dir.parent / f"{ref_dir.name}_hyp_{count}" for count in counts}
    for folder in hyp_dirs.values():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    audio_s = _process_singlish(settings, models, ref_dir, conversations, hyp_dirs, path)
    return {
        "conversations": conversations,
        "audio_s": round(audio_s, 1),
        "by_count": {
            count: _score_singlish(ref_dir, folder, conversations)
            for count, folder in hyp_dirs.items()
        },
    }


def singlish_dev_set(cache: Path = CACHE_DIR / "singlish") -> Path:
    """Generate the dev set with ``shared/singlish/make.py`` once (needs espeak-ng and sox)."""
    if (cache / "manifest.json").exists():
        return cache
    missing = [tool for tool in ("espeak-ng", "sox") if not shutil.which(tool)]
    if missing:
        raise BenchError(f"the Singlish dev set needs {' and '.join(missing)} (apt-get install)")
    done = subprocess.run(
        [sys.executable, str(SINGLISH / "make.py"), "--out", str(cache)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise BenchError(f"make.py failed: {done.stderr[-2000:]}")
    return cache


def _process_singlish(
    settings: Settings,
    models: Any,
    ref_dir: Path,
    conversations: list[str],
    hyp_dirs: dict[str, Path],
    path: str = "live",
) -> float:
    """Each conversation through the worker's own sequence (``processor.process_audio``:
    diarization, ASR with its Singlish options, the verifier, analysis, clips into a scratch
    store), once with the true speaker count and once without. Returns the seconds of audio."""
    import tempfile
    import uuid

    from bench.inputs import rttm_speakers
    from processing.clips import store_clips
    from processing.progress import Unwatched
    from processing.results import heard_result
    from processor import process_audio, process_chunks
    from services.audio import decode_audio
    from storage import LocalStorage

    audio_s = 0.0
    with tempfile.TemporaryDirectory(prefix="lahstats-quality-") as scratch:
        storage = LocalStorage(Path(scratch), b"bench")
        for name in conversations:
            audio = decode_audio(ref_dir / f"{name}.wav")
            audio_s += audio.duration
            speakers = len(rttm_speakers(ref_dir / f"{name}.rttm"))
            hints_by_count = {"oracle": SpeakerHints(num_speakers=speakers), "auto": SpeakerHints()}
            for count in hyp_dirs:
                hints = hints_by_count[count]
                heard = (
                    process_chunks(chunks_of(audio), hints, models, Unwatched())
                    if path == "live"
                    else process_audio(audio, hints, models, Unwatched())
                )
                clips = store_clips(audio, heard, uuid.uuid4(), storage, settings)
                result = heard_result(heard, clips, audio.duration, storage)
                (hyp_dirs[count] / f"{name}.json").write_text(json.dumps(result))
                evidence = hyp_dirs[count] / f"{name}.evidence.json"
                evidence.write_text(json.dumps(segment_evidence(heard.analysis)))
    return audio_s


def segment_evidence(analysis: Any) -> list[dict[str, Any]]:
    """Each segment's speaker, times, recognised words and verdicts, as the database stores
    them (``processing.evidence``): what a recount reads (``research/singlish_recount.py``)."""
    from processing.evidence import verdicts_json, words_json

    return [
        {
            "speaker": g.speaker,
            "start": g.start,
            "end": g.end,
            "words": words_json(g.words),
            "verdicts": verdicts_json(g.verdicts),
        }
        for g in analysis.segments
    ]


def _score_singlish(ref_dir: Path, hyp_dir: Path, conversations: list[str]) -> dict[str, Any]:
    """score.py's report (overall and speaker-agnostic P/R/F1) plus P/R per speaker, summed
    from its per-cell counts; an unmatched hypothesis speaker is a 'phantom'."""
    report_path = hyp_dir / "report.json"
    manifest = json.loads((ref_dir / "manifest.json").read_text())
    if len(conversations) < len(manifest["conversations"]):  # score only what ran
        scoped = hyp_dir / "refs"
        scoped.mkdir(exist_ok=True)
        for name in conversations:  # score.py reads <conversation>.rttm and .counts.json
            for suffix in (".rttm", ".counts.json"):
                path = ref_dir / f"{name}{suffix}"
                (scoped / path.name).write_bytes(path.read_bytes())
        kept = {name: manifest["conversations"][name] for name in conversations}
        (scoped / "manifest.json").write_text(json.dumps({**manifest, "conversations": kept}))
        ref_dir = scoped
    done = subprocess.run(
        [
            *(sys.executable, str(SINGLISH / "score.py"), "hyp"),
            *("--ref-dir", str(ref_dir), "--hyp-dir", str(hyp_dir), "--json", str(report_path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise BenchError(f"score.py failed: {done.stderr[-2000:]}")
    report = json.loads(report_path.read_text())
    return {
        "overall": report["overall"],
        "speaker_agnostic": report["speaker_agnostic"],
        "macro_f1": report["macro_f1"],
        "per_word": report["per_word"],
        "per_speaker": per_speaker(report["cells"]),
    }


def per_speaker(cells: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    tallies: dict[str, Counter[str]] = defaultdict(Counter)
    for cell in cells:
        who = cell["ref_speaker"] or f"phantom {cell['hyp_speaker']}"
        key = f"{cell['conversation']}/{who}"
        r, h = cell["ref"], cell["hyp"]
        tallies[key].update(ref=r, hyp=h, tp=min(r, h), fp=max(h - r, 0), fn=max(r - h, 0))
    return {
        key: {
            **t,
            "precision": round(t["tp"] / (t["tp"] + t["fp"]), 4) if t["tp"] + t["fp"] else None,
            "recall": round(t["tp"] / (t["tp"] + t["fn"]), 4) if t["tp"] + t["fn"] else None,
        }
        for key, t in sorted(tallies.items())
    }


# --- output -----------------------------------------------------------------------------------


def render(result: dict[str, Any]) -> None:
    if "der" in result:
        _render_der(result["der"])
    if "wer" in result:
        wer = result["wer"]
        rows = [[name, f["files"], f["ref_words"], f["wer"]] for name, f in wer["folders"].items()]
        rows.append(["all", wer["total"]["files"], wer["total"]["ref_words"], wer["total"]["wer"]])
        console.print(
            table("WER (normalised) on corpus/asr_en", ["folder", "files", "words", "WER"], rows)
        )
    if "emotion" in result:
        e = result["emotion"]
        console.print(
            table(
                "Emotion on GoEmotions dev (single-label rows, 7 labels)",
                ["rows", "accuracy", "macro F1", f"majority ({e['majority_class']}) accuracy"],
                [[e["rows"], e["accuracy"], e["macro_f1"], e["majority_accuracy"]]],
            )
        )
    if "singlish" in result:
        _render_singlish(result["singlish"])


def _render_der(der: dict[str, Any]) -> None:
    names = list(der["total"]["oracle"])
    rows = [
        [f["name"], f["group"], f["speakers"], count, f[f"{count}_speakers_found"]]
        + [f[f"{count}_{n}"] for n in names]
        for f in der["files"]
        for count in ("oracle", "auto")
    ]
    columns = ["file", "group", "speakers", "count", "found", *names]
    console.print(table("Diarization error per file (DER, JER; 0 is perfect)", columns, rows))
    console.print(table(DER_GROUPS_TITLE, DER_GROUP_COLUMNS, der_group_rows(der)))


DER_GROUPS_TITLE = "Diarization error by group (DER ±0.25 s collar, overlap scored, UEM)"
DER_GROUP_COLUMNS = [
    *("group", "source", "files", "audio s", "DER oracle", "DER auto", "DER one speaker"),
    *("JER oracle", "JER auto", "diarize RTF"),
]


def der_group_rows(der: dict[str, Any]) -> list[list[Any]]:
    """One row per group (its total) then one per source in it, as ``DER_GROUP_COLUMNS``."""
    der_name, jer_name = "DER collar ±0.25 s", "JER collar ±0.25 s"
    rows = []
    for group, summary in der["groups"].items():
        for source, s in [("all", summary), *summary["sources"].items()]:
            t = s["total"]
            rows.append(
                [group, source, s["files"], s["audio_s"]]
                + [t[c][der_name] for c in ("oracle", "auto", ONE_SPEAKER)]
                + [t["oracle"][jer_name], t["auto"][jer_name], s["rtf"]]
            )
    return rows


def _render_singlish(singlish: dict[str, Any]) -> None:
    columns = ["set", "speaker count", "ref", "hyp", "precision", "recall", "F1"]
    columns += ["speaker-agnostic F1", "audio s", "seconds"]
    console.print(table("Singlish target-word counts", columns, singlish_rows(singlish)))
    for name, result in singlish["sets"].items():
        console.print(
            table(
                f"Singlish {name} set, per word (automatic count)",
                ["word", "ref", "hyp", "tp", "precision", "recall", "F1"],
                per_word_rows(result["by_count"]["auto"]),
            )
        )


def singlish_rows(singlish: dict[str, Any]) -> list[list[Any]]:
    """One row per set and speaker count: the columns of ``_render_singlish``."""
    rows = []
    for name, result in singlish["sets"].items():
        for count, r in result["by_count"].items():
            o, a = r["overall"], r["speaker_agnostic"]
            scores = [o["ref"], o["hyp"], o["precision"], o["recall"], o["f1"], a["f1"]]
            rows.append([name, count, *scores, result["audio_s"], result["seconds"]])
    return rows


def per_word_rows(scored: dict[str, Any]) -> list[list[Any]]:
    return [
        [word, t["ref"], t["hyp"], t["tp"], t["precision"], t["recall"], t["f1"]]
        for word, t in scored["per_word"].items()
        if t["ref"] or t["hyp"]
    ]
