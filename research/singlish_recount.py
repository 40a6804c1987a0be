"""``python -m research.singlish_recount``: the Singlish counts again from the evidence
``python -m bench quality --parts singlish`` stored (each segment's words and verdicts,
``<set>_hyp_<count>/<conversation>.evidence.json``), with other dictionary margins, and no ASR.

``--export DIR`` also writes each conversation's recounted occurrences as
``research/calibrate_confidence.py`` caches them (``DIR/<conversation>.json``), so the
confidence can be fitted on this hearing without running the pipeline again.

The recount is the product's own (``services.singlish.read`` per segment, as the analysis and
``lahstats recount`` run it), scored by ``shared/singlish/score.py`` as the bench scores it.
It chooses ``verify_margins["unprompted"]`` (the cross-check of ``services.singlish.crosscheck``)
on the **dev** set only: ``--set dev --sweep unprompted -30 -20 -15 -10 -8 -6 -4 -2 0``. The
never-tuned set is only ever reported at the margin chosen here.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench.inputs import CACHE_DIR
from bench.quality import _score_singlish
from bench.report import console, table
from config import Settings
from services.domain import Utterance, Word
from services.singlish import read
from services.singlish.confidence import Rating, load_calibration
from services.singlish.confidence import counts as counts_at
from services.singlish.dictionary import Corrections, load_corrections
from services.singlish.occurrences import Occurrence
from services.singlish.verification import UNPROMPTED, Verdict

# the product's rating: the shipped calibration at the default COUNT_MIN_CONFIDENCE (0.7)
DEFAULT_RATING = Rating(load_calibration(), Settings().count_min_confidence)
SETS = {
    "dev": CACHE_DIR / "singlish",
    "unseen": CACHE_DIR / "singlish_unseen",
    "train": CACHE_DIR / "singlish_train",  # research.particles hear --set train
    "train_noisy": CACHE_DIR / "singlish_train_noisy",  # research.noisy_tune
}


def occurrences(
    evidence: list[dict[str, Any]], corrections: Corrections, rating: Rating | None = None
) -> list[Occurrence]:
    """The occurrences a recount finds (rated by ``rating``; unrated without)."""
    found: list[Occurrence] = []
    for segment in evidence:
        words = tuple(Word(*w) for w in segment["words"])
        utterance = Utterance(segment["speaker"], segment["start"], segment["end"], words)
        verdicts = [Verdict(**v) for v in segment["verdicts"]]
        found.extend(read(utterance, corrections, verdicts, rating).occurrences)
    return found


def recount(
    evidence: list[dict[str, Any]], corrections: Corrections, rating: Rating | None = None
) -> dict[str, Any]:
    """The result document score.py reads: counts per speaker (with ``rating``: only the
    occurrences at or above its ``COUNT_MIN_CONFIDENCE``, as the product counts), and the
    segments' times."""
    counts: dict[str, Counter[str]] = {}
    for o in occurrences(evidence, corrections, rating):
        if rating is not None and not counts_at(o.confidence, None, rating.min_confidence):
            continue
        counts.setdefault(o.speaker, Counter())[o.word] += 1
    speakers = {s["speaker"] for s in evidence}
    return {
        "speakers": [{"label": s, "word_counts": dict(counts.get(s, {}))} for s in speakers],
        "segments": [
            {"start": s["start"], "end": s["end"], "speaker": s["speaker"]} for s in evidence
        ],
    }


def score(ref_dir: Path, count: str, corrections: Corrections) -> dict[str, Any]:
    hyp_dir = ref_dir.parent / f"{ref_dir.name}_hyp_{count}"
    names = sorted(p.name.removesuffix(".evidence.json") for p in hyp_dir.glob("*.evidence.json"))
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        for name in names:
            evidence = json.loads((hyp_dir / f"{name}.evidence.json").read_text())
            (out / f"{name}.json").write_text(json.dumps(recount(evidence, corrections)))
        return _score_singlish(ref_dir, out, names)


def export(ref_dir: Path, count: str, corrections: Corrections, out: Path) -> None:
    """The recounted occurrences in ``research/calibrate_confidence.py``'s cache shape."""
    hyp_dir = ref_dir.parent / f"{ref_dir.name}_hyp_{count}"
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(hyp_dir.glob("*.evidence.json")):
        evidence = json.loads(path.read_text())
        cached = {
            "segments": [[s["start"], s["end"], s["speaker"]] for s in evidence],
            "turns": [],
            "occurrences": [asdict(o) for o in occurrences(evidence, corrections)],
        }
        (out / path.name.replace(".evidence", "")).write_text(json.dumps(cached))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--set", choices=list(SETS), default="dev")
    parser.add_argument("--count", choices=("oracle", "auto"), default="auto")
    parser.add_argument("--sweep", nargs="+", metavar=("VERIFIER", "MARGIN"), default=[])
    parser.add_argument("--export", type=Path, help="write the shipped dictionary's occurrences")
    parser.add_argument(
        "--unprompted",
        type=float,
        help="with --export: this cross-check margin (-inf: the cross-check off)",
    )
    args = parser.parse_args()
    if args.export:
        shipped = load_corrections()
        if args.unprompted is not None:
            chosen = {**shipped.verify_margins, UNPROMPTED: args.unprompted}
            shipped = replace(shipped, verify_margins=chosen)
        export(SETS[args.set], args.count, shipped, args.export)
    if not args.sweep:
        return
    verifier, margins = args.sweep[0], [float(m) for m in args.sweep[1:]]
    shipped = load_corrections()
    rows = []
    for margin in [-math.inf, *margins]:
        corrections = replace(shipped, verify_margins={**shipped.verify_margins, verifier: margin})
        o = score(SETS[args.set], args.count, corrections)["overall"]
        rows.append([margin, o["ref"], o["hyp"], o["tp"], o["precision"], o["recall"], o["f1"]])
    columns = [f"{verifier} margin", "ref", "hyp", "tp", "precision", "recall", "F1"]
    console.print(table(f"{args.set} set, {args.count} count, recounted", columns, rows))


if __name__ == "__main__":
    main()
