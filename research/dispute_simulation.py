"""``python -m research.dispute_simulation``: how much a group's disputes raise the precision
of its later counts (issue 14, lever 3), by simulation on generated conversations.

The occurrences the default pipeline found (cached by ``research.calibrate_confidence hear``)
are labelled right or wrong against the reference, as there. Each conversation in turn is the
one measured; the group is taken to have held all the others before it and to have disputed
every false occurrence that counted in them, letting the right ones that counted stand
(``--confirm``: and confirming every right one left below the threshold). Their judgements
become the group's feedback (:func:`services.singlish.confidence.group_feedback`), which
rates the measured conversation
exactly as ``lahstats recount`` and the worker rate a group's session. Printed: counted,
right, precision, recall and F1 of the measured conversations, summed, at the threshold,
without and with the feedback.

``--sets`` picks the tune sets (dev, train); ``--held-out DIR`` adds a generated set that no
fit ever saw (heard first with ``calibrate_confidence hear --held-out DIR``). Figures on the
tune sets use a calibration fitted on them (in-sample for the rating; the feedback is always
from other conversations).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.quality import singlish_dev_set
from bench.report import console, table
from research.calibrate_confidence import WORK, labelled, reference_total, train_set
from services.singlish.confidence import (
    ACCEPTED,
    CONFIRMED,
    DISPUTED,
    NO_FEEDBACK,
    GroupFeedback,
    group_feedback,
    load_calibration,
    rate_for_group,
    reading_key,
)
from services.singlish.occurrences import Occurrence

Row = tuple[str, Occurrence, bool]


def simulate(
    rows: Sequence[Row], references: dict[str, int], threshold: float, confirm: bool
) -> dict[str, Any]:
    """Leave-one-conversation-out: each measured with the others' judgements as feedback."""
    calibration = load_calibration()
    tallies = {"without": [0, 0], "with": [0, 0]}  # counted, right
    names = sorted({name for name, _, _ in rows})
    for measured in names:
        feedback = _judgements([r for r in rows if r[0] != measured], threshold, confirm)
        for arm, given in (("without", NO_FEEDBACK), ("with", feedback)):
            for name, o, right in rows:
                if name == measured and rate_for_group(o, calibration, given) >= threshold:
                    tallies[arm][0] += 1
                    tallies[arm][1] += int(right)
    total = sum(references[n] for n in names)
    return {arm: _prf(counted, right, total) for arm, (counted, right) in tallies.items()}


def _judgements(rows: Sequence[Row], threshold: float, confirm: bool) -> GroupFeedback:
    """Every false occurrence that counted disputed (the possible ones are nobody's worry);
    every right one left standing if it counted (and confirmed if not, with ``confirm``), as
    :func:`processing.evidence.group_feedback_of` reads a reviewed session."""
    calibration = load_calibration()
    judged = []
    for _, o, right in rows:
        counted = rate_for_group(o, calibration, NO_FEEDBACK) >= threshold
        if not right and counted:
            judged.append((reading_key(o), DISPUTED))
        elif counted:
            judged.append((reading_key(o), ACCEPTED))
        elif confirm:
            judged.append((reading_key(o), CONFIRMED))
    return group_feedback(judged)


def _prf(counted: int, right: int, reference: int) -> dict[str, Any]:
    p = right / counted if counted else 0.0
    r = right / reference if reference else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"counted": counted, "right": right, "precision": p, "recall": r, "f1": f1}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=("dev", "train"), default=["dev", "train"])
    parser.add_argument("--held-out", nargs="*", type=Path, default=[])
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--threshold", type=float, help="default: COUNT_MIN_CONFIDENCE")
    parser.add_argument("--confirm", action="store_true", help="also confirm possible right ones")
    args = parser.parse_args(argv)
    if args.threshold is None:
        from config import Settings

        args.threshold = Settings().count_min_confidence
    makers = {"dev": singlish_dev_set, "train": train_set}
    sets = {name: (makers[name](), args.work / name) for name in args.sets}
    sets |= {d.name: (d, args.work / f"held-{d.name}") for d in args.held_out}
    report = {}
    rows_out = []
    for name, (ref_dir, work) in sets.items():
        rows = labelled(ref_dir, work)
        names = sorted({n for n, _, _ in rows})
        references = {n: reference_total(ref_dir, [n]) for n in names}
        result = simulate(rows, references, args.threshold, args.confirm)
        report[name] = result
        for arm in ("without", "with"):
            f = result[arm]
            rows_out.append(
                [name, arm, f["counted"], f["right"], f["precision"], f["recall"], f["f1"]]
            )
    judged = "disputes + confirmations" if args.confirm else "disputes"
    title = f"group feedback at threshold {args.threshold} ({judged})"
    header = ["set", "feedback", "counted", "right", "precision", "recall", "F1"]
    console.print(table(title, header, rows_out))
    console.print(json.dumps(report))


if __name__ == "__main__":
    main()
