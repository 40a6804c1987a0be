"""``python -m research.calibrate_confidence``: fit the occurrence confidence
(``services/singlish/confidence.py``) on the generated Singlish dev set, and report how well
it is calibrated.

1. ``hear``: every conversation of a generated set (``--ref-dir``, made by
   ``shared/singlish/make.py``; the dev set by default) through the worker's own sequence with
   its own speaker count — ``--path live`` (the default, as the product hears a session: each
   30 s chunk as its chunk job hears it, ``processor.process_chunks``) or ``batch``
   (``processor.process_audio``, the whole recording at once) — caching the occurrences it
   finds and the speaker segments under ``--work`` (one JSON per conversation, with the path
   it was heard by; a cache of the other path is heard again);
2. ``fit``: label each cached occurrence right or wrong against the reference (its speaker
   mapped to a reference speaker by time overlap, as ``shared/singlish/score.py`` maps them;
   right when that speaker says that word in a reference turn overlapping it, each reference
   word matched once), fit the logistic calibration on the features
   :func:`services.singlish.confidence.features` gives, and print the reliability table and
   the precision/recall against the threshold, **cross-validated by conversation** (each
   conversation rated by a fit on the others), plus the in-sample figures of the shipped fit.
   ``--write`` stores the fit as ``services/data/confidence.json`` (a new version);
3. ``rate``: the shipped calibration, unrefitted, on the cached occurrences of the tune and
   ``--held-out`` sets (reliability and the threshold curve), e.g. after the hearing changed.

The labelled occurrences are also what ``research.dispute_simulation`` replays.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.quality import singlish_dev_set
from bench.report import RESULTS_DIR, SHARED, console, table
from services import singlish
from services.domain import Utterance, Word
from services.singlish.confidence import (
    CALIBRATION_FILE,
    FEATURES,
    Calibration,
    features,
    load_calibration,
    rate,
)
from services.singlish.dictionary import Corrections, load_corrections
from services.singlish.occurrences import Occurrence
from services.singlish.verification import Verdict

SINGLISH = SHARED / "singlish"
WORK = RESULTS_DIR / "cache" / "confidence"
BINS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0001)
ANYONE = "*"  # label occurrences by the word alone, whoever it is credited to
THRESHOLDS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def hear(ref_dir: Path, work: Path, limit: int | None = None, path: str = "live") -> None:
    """Run the default pipeline over every conversation of ``ref_dir`` not yet cached as heard
    by ``path`` ("live": in 30 s chunks, as the product hears a session; "batch": whole)."""
    from bench.quality import chunks_of
    from config import Settings
    from processing.evidence import verdicts_json, words_json
    from processing.progress import Unwatched
    from processor import load_engines, process_audio, process_chunks
    from services.audio import decode_audio
    from services.domain import SpeakerHints

    work.mkdir(parents=True, exist_ok=True)
    names = list(json.loads((ref_dir / "manifest.json").read_text())["conversations"])[:limit]
    todo = [n for n in names if _heard_by(work / f"{n}.json") != path]
    if not todo:
        return
    engines = load_engines(Settings())
    for name in todo:
        audio = decode_audio(ref_dir / f"{name}.wav")
        heard = (
            process_chunks(chunks_of(audio), SpeakerHints(), engines, Unwatched())
            if path == "live"
            else process_audio(audio, SpeakerHints(), engines, Unwatched())
        )
        cached: dict[str, Any] = {
            "path": path,
            "segments": [[s.start, s.end, s.speaker] for s in heard.analysis.segments],
            "turns": [[t.start, t.end, t.speaker] for t in heard.turns],
            "occurrences": [asdict(o) for o in heard.analysis.occurrences],
            # what the occurrences were read from, so that they can be read again as the
            # product's code reads them now (new evidence fields) without ASR
            "evidence": [
                {
                    "speaker": s.speaker,
                    "start": s.start,
                    "end": s.end,
                    "words": words_json(s.words),
                    "verdicts": verdicts_json(s.verdicts),
                }
                for s in heard.analysis.segments
            ],
        }
        (work / f"{name}.json").write_text(json.dumps(cached))
        console.print(f"heard {name}: {len(cached['occurrences'])} occurrences")


def _heard_by(cache: Path) -> str | None:
    """The path a cached conversation was heard by (caches from before it was recorded were
    heard whole), or None when there is no cache."""
    if not cache.exists():
        return None
    return str(json.loads(cache.read_text()).get("path", "batch"))


def labelled(
    ref_dir: Path, work: Path, by_speaker: bool = False
) -> list[tuple[str, Occurrence, bool]]:
    """(conversation, occurrence, right?) for every cached occurrence, in time order: right
    when the word was said there (``by_speaker``: and by the speaker it is credited to)."""
    sys.path.insert(0, str(SINGLISH))
    import score
    from singlish_words import count_targets

    out = []
    for path in sorted(work.glob("*.json")):
        name = path.stem
        if not (ref_dir / f"{name}.rttm").exists():
            continue
        cached = json.loads(path.read_text())
        ref = score.load_reference(ref_dir / name)
        spans = [tuple(t) for t in cached["turns"] or cached["segments"]]
        mapping = score.map_speakers(
            sorted({s[2] for s in spans}),
            sorted({t[2] for t in ref.turns}),
            score.overlap(spans, ref.turns),
        )
        left = _reference_words(ref_dir / f"{name}.stm", count_targets)
        for o in _occurrences(cached):
            speaker = mapping.get(o.speaker) if by_speaker else ANYONE
            out.append((name, o, _match(o, speaker, left)))
    return out


def _occurrences(cached: dict[str, Any]) -> list[Occurrence]:
    """The cached occurrences; read again from the cached words and verdicts by the product's
    own reading (``services.singlish.read``, the shipped dictionary) where they were cached,
    so that evidence fields added since are there too."""
    if "evidence" not in cached:
        return [Occurrence(**raw) for raw in cached["occurrences"]]
    corrections = _corrections()
    found: list[Occurrence] = []
    for segment in cached["evidence"]:
        words = tuple(Word(float(a), float(b), str(t), float(p)) for a, b, t, p in segment["words"])
        utterance = Utterance(segment["speaker"], segment["start"], segment["end"], words)
        verdicts = [Verdict(**v) for v in segment["verdicts"]]
        found.extend(singlish.read(utterance, corrections, verdicts).occurrences)
    return found


@functools.cache
def _corrections() -> Corrections:
    return load_corrections(None)


def _reference_words(stm: Path, count_targets: Any) -> list[tuple[float, float, str, Counter]]:
    turns = []
    for line in stm.read_text().splitlines():
        _, _, speaker, start, end, text = line.split(" ", 5)
        turns.append((float(start), float(end), speaker, Counter(count_targets(text))))
    return turns


def _match(
    o: Occurrence, speaker: str | None, left: list[tuple[float, float, str, Counter]]
) -> bool:
    """Right when the word is said in a turn overlapping the occurrence (0.5 s either side;
    by ``speaker`` unless that is ``ANYONE``); that reference word is then used up."""
    for start, end, who, words in left:
        if speaker not in (ANYONE, who) or words[o.word] <= 0:
            continue
        if start - 0.5 <= o.end and o.start <= end + 0.5:
            words[o.word] -= 1
            return True
    return False


def fit(
    rows: Sequence[tuple[str, Occurrence, bool]],
    l2: float = 1.0,
    version: str = "candidate",
    names: Sequence[str] = FEATURES,
    base: Calibration | None = None,
) -> Calibration:
    """L2-regularised logistic regression (Newton steps) of right/wrong on the features
    ``names`` (the others get no weight). With a ``base`` calibration, on its logit (scaled,
    unshrunk) and the ``names`` it has no weight for: a recalibration of ``base`` that adds
    features without refitting the ones it has, folded back into one :class:`Calibration`."""
    added = [n for n in names if base is None or n not in base.weights]
    x = np.array(
        [[1.0, *_base_logit(o, base), *(features(o)[n] for n in added)] for _, o, _ in rows]
    )
    y = np.array([1.0 if right else 0.0 for *_, right in rows])
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[: 1 if base is None else 2] = 1e-6  # the intercept (and the base's scale) unshrunk
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        gradient = x.T @ (p - y) + penalty * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    if base is None:
        return Calibration(version, float(w[0]), dict(zip(added, map(float, w[1:]), strict=True)))
    scale = float(w[1])
    weights = {n: scale * v for n, v in base.weights.items()}
    weights |= dict(zip(added, map(float, w[2:]), strict=True))
    return Calibration(version, float(w[0]) + scale * base.intercept, weights)


def _base_logit(o: Occurrence, base: Calibration | None) -> list[float]:
    if base is None:
        return []
    return [base.intercept + sum(base.weights.get(n, 0.0) * v for n, v in features(o).items())]


def cross_validated(
    rows: Sequence[tuple[str, Occurrence, bool]],
    l2: float,
    names: Sequence[str] = FEATURES,
    base: Calibration | None = None,
) -> list[float]:
    """Each conversation's occurrences rated by a fit on the other conversations."""
    conversations = sorted({name for name, _, _ in rows})
    rated: dict[int, float] = {}
    for held in conversations:
        calibration = fit([r for r in rows if r[0] != held], l2, names=names, base=base)
        for i, (name, o, _) in enumerate(rows):
            if name == held:
                rated[i] = rate(o, calibration)
    return [rated[i] for i in range(len(rows))]


def reliability(confidences: Sequence[float], right: Sequence[bool]) -> list[list[Any]]:
    table_rows = []
    for low, high in itertools.pairwise(BINS):
        inside = [r for c, r in zip(confidences, right, strict=True) if low <= c < high]
        mean = [c for c in confidences if low <= c < high]
        table_rows.append(
            [
                f"{low:.2f}-{min(high, 1.0):.2f}",
                len(inside),
                round(float(np.mean(mean)), 3) if mean else None,
                round(sum(inside) / len(inside), 3) if inside else None,
            ]
        )
    return table_rows


def curve(confidences: Sequence[float], right: Sequence[bool], reference: int) -> list[list[Any]]:
    """Precision, recall (against all ``reference`` words) and F1 at each threshold."""
    table_rows = []
    for t in THRESHOLDS:
        kept = [r for c, r in zip(confidences, right, strict=True) if c >= t]
        tp = sum(kept)
        p = tp / len(kept) if kept else 0.0
        r = tp / reference if reference else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        table_rows.append([t, len(kept), tp, round(p, 3), round(r, 3), round(f1, 3)])
    return table_rows


def reference_total(ref_dir: Path, names: Sequence[str]) -> int:
    total = 0
    for name in names:
        counts = json.loads((ref_dir / f"{name}.counts.json").read_text())["speakers"]
        total += sum(n for words in counts.values() for n in words.values())
    return total


def report(
    version: str,
    tune: Sequence[tuple[Path, Path]],
    held_out: Sequence[tuple[Path, Path]],
    l2: float,
    write: bool,
    names: Sequence[str] = FEATURES,
    base: Calibration | None = None,
) -> dict[str, Any]:
    """Fit on the ``tune`` sets (cross-validated tables, and the in-sample ones of the fit on
    all of them); rate the ``held_out`` sets with that fit, which never saw them."""
    rows = [row for ref_dir, work in tune for row in labelled(ref_dir, work)]
    right = [r for *_, r in rows]
    credited = [r for ref_dir, work in tune for *_, r in labelled(ref_dir, work, by_speaker=True)]
    reference = sum(reference_total(ref_dir, _names(ref_dir, work)) for ref_dir, work in tune)
    cv = cross_validated(rows, l2, names, base)
    shipped = fit(rows, l2, version, names, base)
    result: dict[str, Any] = {
        "tune_sets": [str(ref_dir) for ref_dir, _ in tune],
        "conversations": sorted({name for name, _, _ in rows}),
        "occurrences": len(rows),
        "right": sum(right),
        "l2": l2,
        "on": base.version if base is not None else None,
        "reference_words": reference,
        "by_source": _by_source(rows),
        "calibration": asdict(shipped),
        "cross_validated": _figures(cv, right, reference),
        "in_sample": _figures([rate(o, shipped) for _, o, _ in rows], right, reference),
        "cross_validated_by_speaker": _figures(cv, credited, reference),
        "held_out": {str(ref_dir): _held_out(ref_dir, work, shipped) for ref_dir, work in held_out},
    }
    _print("tune sets, cross-validated by conversation", result["cross_validated"])
    _print("tune sets, in-sample (the shipped fit)", result["in_sample"])
    _print(
        "tune sets, cross-validated, right = word AND speaker", result["cross_validated_by_speaker"]
    )
    for name, figures in result["held_out"].items():
        _print(f"held out {name} (never fitted on)", figures["word"])
        _print(f"held out {name}, right = word AND speaker", figures["word_and_speaker"])
    console.print(json.dumps({k: result[k] for k in ("occurrences", "right", "by_source")}))
    console.print(json.dumps(result["calibration"]))
    if write:
        _ship(shipped, result)
    (tune[0][1].parent / "report.json").write_text(json.dumps(result, indent=2))
    return result


# The feature sets ``compare`` fits: confidence-1's, then each new feature alone, then all.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "base": FEATURES[:7],
    "+context": (*FEATURES[:7], "context_logit"),
    "+targets": (*FEATURES[:7], "other_targets"),
    "+floor": (*FEATURES[:7], "asr_floor"),
    "+context+targets": (*FEATURES[:7], "context_logit", "other_targets"),
    "all": FEATURES,
}


def compare(
    tune: Sequence[tuple[Path, Path]], l2: float, threshold: float, base: Calibration | None
) -> list[list[Any]]:
    """Each of :data:`FEATURE_SETS`, cross-validated by conversation on the ``tune`` sets (and
    each as a recalibration of ``base``), and the shipped calibration unrefitted: precision,
    recall and F1 at ``threshold`` over all the tune sets and per set, and the Brier score (one
    row per feature set and set)."""
    per_set = {work.name: labelled(ref_dir, work) for ref_dir, work in tune}
    totals = {w.name: reference_total(r, _names(r, w)) for r, w in tune}
    rows = [row for kept in per_set.values() for row in kept]
    sets = [name for name in per_set for _ in per_set[name]]
    shipped = load_calibration()
    rated = {f"shipped {shipped.version}": [rate(o, shipped) for _, o, _ in rows]}
    rated |= {name: cross_validated(rows, l2, names) for name, names in FEATURE_SETS.items()}
    if base is not None:
        rated |= {
            f"on {base.version}: {name}": cross_validated(rows, l2, names, base)
            for name, names in FEATURE_SETS.items()
        }
    out = []
    for name, confidences in rated.items():
        for part in ("all", *per_set):
            keep = [i for i, s in enumerate(sets) if part in ("all", s)]
            c = [confidences[i] for i in keep]
            right = [rows[i][2] for i in keep]
            total = sum(totals.values()) if part == "all" else totals[part]
            at = next(r for r in curve(c, right, total) if r[0] == threshold)
            brier = round(float(np.mean((np.array(c) - np.array(right)) ** 2)), 4)
            out.append([name, part, len(c), sum(right), *at[1:], brier])
    header = ["features", "set", "occurrences", "right", "counted", "tp", "P", "R", "F1", "Brier"]
    console.print(table(f"cross-validated by conversation, at {threshold}", header, out))
    return out


def _held_out(ref_dir: Path, work: Path, calibration: Calibration) -> dict[str, Any]:
    """A set no fit saw, rated by ``calibration``: right = the word; and = word and speaker."""
    kept = labelled(ref_dir, work)
    rated = [rate(o, calibration) for _, o, _ in kept]
    total = reference_total(ref_dir, _names(ref_dir, work))
    by_speaker = [r for *_, r in labelled(ref_dir, work, by_speaker=True)]
    return {
        "word": _figures(rated, [r for *_, r in kept], total),
        "word_and_speaker": _figures(rated, by_speaker, total),
    }


def _ship(calibration: Calibration, result: dict[str, Any]) -> None:
    fitted_on = {
        "conversations": result["conversations"],
        "occurrences": result["occurrences"],
        "right": result["right"],
        "l2": result["l2"],
        "on": result["on"],  # the calibration recalibrated (its weights scaled), if any
        "labels": "right = the word was said there (whoever it is credited to)",
        "made": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    data = {**asdict(calibration), "fitted_on": fitted_on}
    CALIBRATION_FILE.write_text(json.dumps(data, indent=2) + "\n")
    console.print(f"wrote {CALIBRATION_FILE}")


def _names(ref_dir: Path, work: Path) -> list[str]:
    return sorted(p.stem for p in work.glob("*.json") if (ref_dir / f"{p.stem}.rttm").exists())


def _figures(confidences: Sequence[float], right: Sequence[bool], reference: int) -> dict[str, Any]:
    return {
        "occurrences": len(right),
        "right": sum(right),
        "brier": round(float(np.mean((np.array(confidences) - np.array(right)) ** 2)), 4),
        "reliability": reliability(confidences, right),
        "curve": curve(confidences, right, reference),
    }


def _print(title: str, figures: dict[str, Any]) -> None:
    header = ["confidence", "occurrences", "mean confidence", "share right"]
    console.print(table(f"reliability, {title}", header, figures["reliability"]))
    curve_header = ["threshold", "counted", "right", "precision", "recall", "F1"]
    console.print(table(f"threshold, {title}", curve_header, figures["curve"]))
    console.print(f"Brier score {figures['brier']}")


def _by_source(rows: Sequence[tuple[str, Occurrence, bool]]) -> dict[str, list[int]]:
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _, o, right in rows:
        tally[o.source][0] += 1
        tally[o.source][1] += int(right)
    return dict(tally)


def train_set(cache: Path = RESULTS_DIR / "cache" / "singlish_train") -> Path:
    """The second generated tune set (``research/data/singlish_train.tsv``), made once."""
    if not (cache / "manifest.json").exists():
        script = Path(__file__).parent / "data" / "singlish_train.tsv"
        subprocess.run(
            [
                sys.executable,
                str(SINGLISH / "make.py"),
                "--script",
                str(script),
                "--out",
                str(cache),
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return cache


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("hear", "fit", "both", "rate", "compare"))
    parser.add_argument(
        "--sets",
        nargs="+",
        choices=("dev", "train", "train_noisy", "noisy_voices"),
        default=["dev", "train"],
        help="the tune sets the fit is made on",
    )
    parser.add_argument(
        "--held-out",
        nargs="*",
        type=Path,
        default=[],
        help="generated sets (make.py --out DIR) only rated, never fitted on",
    )
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--limit", type=int)
    parser.add_argument(
        "--path",
        choices=("live", "batch"),
        default="live",
        help="hear: in 30 s chunks as the product does (live) or whole (batch)",
    )
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument("--write", action="store_true", help="store the fit as the shipped one")
    parser.add_argument("--version", default="candidate", help="the fit's version, with --write")
    parser.add_argument(
        "--features", choices=tuple(FEATURE_SETS), default="all", help="what fit fits on"
    )
    parser.add_argument("--threshold", type=float, default=0.7, help="compare's operating point")
    parser.add_argument(
        "--on",
        type=Path,
        help="a calibration file to recalibrate (its weights kept, scaled) with the new features",
    )
    args = parser.parse_args(argv)
    from research.noisy_tune import noisy_train_set
    from research.noisy_voices_tune import noisy_voices_set

    makers = {
        "dev": singlish_dev_set,
        "train": train_set,
        "train_noisy": noisy_train_set,
        "noisy_voices": noisy_voices_set,
    }
    tune = [(makers[name](), args.work / name) for name in args.sets]
    held_out = [(ref_dir, args.work / f"held-{ref_dir.name}") for ref_dir in args.held_out]
    base = load_calibration(args.on) if args.on else None
    if args.step in ("hear", "both"):
        for ref_dir, work in [*tune, *held_out]:
            hear(ref_dir, work, args.limit, args.path)
    if args.step in ("fit", "both"):
        names = FEATURE_SETS[args.features]
        report(args.version, tune, held_out, args.l2, args.write, names, base)
    if args.step == "compare":
        compare(tune, args.l2, args.threshold, base)
    if args.step == "rate":  # the shipped calibration, unchanged, on each set's occurrences
        calibration = load_calibration()
        for ref_dir, work in [*tune, *held_out]:
            figures = _held_out(ref_dir, work, calibration)
            _print(f"{ref_dir.name}, rated by {calibration.version}", figures["word"])
            _print(f"{ref_dir.name}, right = word AND speaker", figures["word_and_speaker"])


if __name__ == "__main__":
    main()
