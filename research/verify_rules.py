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
from pathlib import Path
from typing import Any

from bench.report import SHARED, console, table
from research.particles import SETS, hyp_dir, utterances
from services.singlish.dictionary import load_corrections
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


def rows_for(name: str, verifier: Verifier) -> list[dict[str, Any]]:
    from services.audio import decode_audio
    from services.singlish import hotword_prompt

    corrections = load_corrections()
    prompts = {"plain": "", "biased": hotword_prompt()}
    rows = []
    for path in sorted(hyp_dir(name).glob("*.evidence.json")):
        conversation = path.name.removesuffix(".evidence.json")
        audio = decode_audio(SETS[name] / f"{conversation}.wav")
        for utterance in utterances(json.loads(path.read_text())):
            for candidate in candidates(utterance, corrections):
                row: dict[str, Any] = {"conversation": conversation}
                for kind, prompt in prompts.items():
                    verdict = _check(audio, utterance, candidate, verifier, prompt)
                    row |= {"start": verdict.start, "end": verdict.end, "heard": verdict.heard}
                    row |= {"says": verdict.says, "rule": verdict.rule, kind: verdict.margin}
                stm = SETS[name] / f"{conversation}.stm"
                row["right"] = said_there(stm, row["start"], row["end"], row["says"])
                rows.append(row)
    return rows


def main() -> None:
    from config import Settings
    from services.singlish.verification import load_verifier

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--set", choices=list(SETS), default="dev")
    args = parser.parse_args()
    verifier = load_verifier(Settings())
    assert verifier is not None
    rows = rows_for(args.set, verifier)
    out = SETS[args.set].parent / f"{SETS[args.set].name}_rules.json"
    out.write_text(json.dumps(rows))
    columns = ["conversation", "start", "heard", "says", "plain", "biased", "right"]
    printed = [[r["conversation"][:3], *(r[c] for c in columns[1:])] for r in rows]
    console.print(table(f"verify rules on {args.set}", columns, printed))


if __name__ == "__main__":
    main()
