"""``python -m research.verify_rules --set S``: every place a ``verify`` rule of the dictionary
matches in the stored transcripts of a generated set, scored both ways (``plain``: no prompt;
``biased``: the hotword prompt) and labelled right or wrong against the reference, so that a
rule's verifier and margins are chosen on the tune sets (dev, train) only.

Reads the evidence ``python -m bench quality --parts singlish`` or ``python -m
research.particles hear`` stored (``<set>_hyp_auto/<conversation>.evidence.json``); writes
``<set>_rules.json`` (the rows printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench.quality import _score_singlish
from bench.report import SHARED, console, table
from research.particles import SETS, hyp_dir, utterances
from research.singlish_recount import DEFAULT_RATING, occurrences, recount
from services.singlish.confidence import Rating
from services.singlish.dictionary import VERIFIERS, Corrections, load_corrections
from services.singlish.verification import Verifier, _check, candidates


def said_there(stm: Path, start: float, end: float, says: str) -> bool:
    """Whether a reference turn overlapping ``start``-``end`` (±1 s, whoever speaks) says the
    target word of ``says``."""
    sys.path.insert(0, str(SHARED / "singlish"))
    from singlish_words import count_targets

    def said(text: str) -> set[str]:
        return {w for w, n in count_targets(text).items() if n}

    wanted = said(says)
    for line in stm.read_text().splitlines():
        _, _, _, a, b, text = line.split(" ", 5)
        if float(a) - 1.0 < end and float(b) + 1.0 > start and wanted & said(text):
            return True
    return False


def rows_for(name: str, verifier: Verifier, corrections: Corrections) -> list[dict[str, Any]]:
    from services.audio import decode_audio
    from services.singlish import hotword_prompt

    prompts = {"plain": "", "biased": hotword_prompt()}
    rows = []
    for path in sorted(hyp_dir(name).glob("*.evidence.json")):
        conversation = path.name.removesuffix(".evidence.json")
        audio = decode_audio(SETS[name] / f"{conversation}.wav")
        for utterance in utterances(json.loads(path.read_text())):
            for candidate in candidates(utterance, corrections):
                row: dict[str, Any] = {"conversation": conversation}
                row["speaker"] = utterance.speaker
                for kind, prompt in prompts.items():
                    verdict = _check(audio, utterance, candidate, verifier, prompt)
                    row |= {"start": verdict.start, "end": verdict.end, "heard": verdict.heard}
                    row |= {"says": verdict.says, "rule": verdict.rule, kind: verdict.margin}
                stm = SETS[name] / f"{conversation}.stm"
                row["right"] = said_there(stm, row["start"], row["end"], row["says"])
                rows.append(row)
    return rows


def sweep(name: str, margins: list[float], candidate: Path | None) -> None:
    """The recount of set ``name``: as stored (the shipped dictionary, its verdicts), then with
    the dictionary ``candidate`` (default: the shipped one) and the verdicts of
    ``<set>_rules.json`` (scored for that dictionary), each rule scored as the dictionary says
    (``plain`` or ``biased``), at each ``biased`` margin (``plain`` at the dictionary's)."""
    rows = json.loads((SETS[name].parent / f"{SETS[name].name}_rules.json").read_text())
    dictionary = load_corrections(candidate)
    table_rows = []
    for margin in [None, *margins]:
        corrections, verdicts = load_corrections(), None
        if margin is not None:
            chosen = {**dictionary.verify_margins, "biased": margin}
            corrections = replace(dictionary, verify_margins=chosen)
            verdicts = _verdicts(rows, dictionary)
        label = "as stored" if margin is None else f"margin {margin}"
        table_rows.append([label])
        for rating in (None, DEFAULT_RATING):
            scored = _score(name, corrections, verdicts, rating)
            o, a = scored["overall"], scored["speaker_agnostic"]
            table_rows[-1] += [o["hyp"], o["tp"], o["precision"], o["recall"], o["f1"]]
            table_rows[-1] += [a["precision"], a["f1"]]
    columns = ["dictionary", "hyp", "tp", "P", "R", "F1", "P any", "F1 any"]
    columns += ["hyp @0.7", "tp", "P", "R", "F1", "P any", "F1 any"]
    console.print(table(f"{name}: {candidate or 'shipped'}", columns, table_rows))


def _verdicts(rows: list[dict[str, Any]], dictionary: Corrections) -> dict[str, list[dict]]:
    """Conversation → the verdicts of ``rows``, each as its rule's verifier scored it."""
    kinds = {r.describe(): r.verify for r in dictionary.rules}
    out: dict[str, list[dict]] = {}
    for row in rows:
        kind = kinds.get(row["rule"], "plain")
        out.setdefault(row["conversation"], []).append(
            {
                "speaker": row["speaker"], "start": row["start"], "end": row["end"],
                "heard": row["heard"], "says": row["says"], "rule": row["rule"],
                "verifier": kind, "margin": row[kind],
            }
        )  # fmt: skip
    return out


def _score(
    name: str,
    corrections: Corrections,
    verdicts: dict[str, list[dict]] | None,
    rating: Rating | None,
) -> dict[str, Any]:
    """The recount; ``verdicts`` (when given) replace the stored verify-rule verdicts."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        names = []
        for path in sorted(hyp_dir(name).glob("*.evidence.json")):
            conversation = path.name.removesuffix(".evidence.json")
            names.append(conversation)
            evidence = json.loads(path.read_text())
            if verdicts is not None:
                evidence = _with_verdicts(evidence, verdicts.get(conversation, []))
            document = recount(evidence, corrections, rating)
            (out / f"{conversation}.json").write_text(json.dumps(document))
        return _score_singlish(SETS[name], out, names)


def export(name: str, candidate: Path | None, out: Path) -> None:
    """The occurrences of set ``name`` under the dictionary ``candidate`` and the verdicts of
    ``<set>_rules.json``, in ``research/calibrate_confidence.py``'s cache shape
    (``out/<conversation>.json``), so the confidence can be fitted on this hearing."""
    rows = json.loads((SETS[name].parent / f"{SETS[name].name}_rules.json").read_text())
    dictionary = load_corrections(candidate)
    verdicts = _verdicts(rows, dictionary)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(hyp_dir(name).glob("*.evidence.json")):
        conversation = path.name.removesuffix(".evidence.json")
        evidence = _with_verdicts(json.loads(path.read_text()), verdicts.get(conversation, []))
        cached = {
            "segments": [[s["start"], s["end"], s["speaker"]] for s in evidence],
            "turns": [],
            "occurrences": [asdict(o) for o in occurrences(evidence, dictionary)],
        }
        (out / f"{conversation}.json").write_text(json.dumps(cached))


def _with_verdicts(evidence: list[dict[str, Any]], mine: list[dict]) -> list[dict[str, Any]]:
    """``evidence`` with its verify-rule verdicts replaced by ``mine``."""
    for segment in evidence:
        kept = [v for v in segment["verdicts"] if v["verifier"] not in VERIFIERS]
        segment["verdicts"] = kept + [
            v
            for v in mine
            if v["speaker"] == segment["speaker"]
            and segment["start"] - 1e-6 <= v["start"]
            and v["end"] <= segment["end"] + 1e-6
        ]
    return evidence


def main() -> None:
    from config import Settings
    from services.singlish.verification import load_verifier

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--set", choices=list(SETS), default="dev")
    parser.add_argument("--sweep", nargs="+", type=float, help="biased margins to recount at")
    parser.add_argument("--corrections", type=Path, help="a dictionary other than the shipped one")
    parser.add_argument("--export", type=Path, help="write the occurrences for the calibration")
    args = parser.parse_args()
    if args.export:
        export(args.set, args.corrections, args.export)
        return
    if args.sweep:
        sweep(args.set, args.sweep, args.corrections)
        return
    verifier = load_verifier(Settings())
    assert verifier is not None
    rows = rows_for(args.set, verifier, load_corrections(args.corrections))
    out = SETS[args.set].parent / f"{SETS[args.set].name}_rules.json"
    out.write_text(json.dumps(rows))
    columns = ["conversation", "start", "heard", "says", "plain", "biased", "right"]
    printed = [[r["conversation"][:3], *(r[c] for c in columns[1:])] for r in rows]
    console.print(table(f"verify rules on {args.set}", columns, printed))


if __name__ == "__main__":
    main()
