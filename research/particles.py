"""``python -m research.particles``: the clause-end particle listen
(``services/singlish/particles.py``), measured on stored evidence, without running ASR again.

1. ``hear --set train``: the default pipeline over a generated set (as ``python -m bench
   quality --parts singlish`` runs it for dev and unseen), storing each segment's words and
   verdicts as ``<set>_hyp_auto/<conversation>.evidence.json`` (the bench's shape), and the
   seconds each stage took;
2. ``listen --set S``: at every clause end of the stored segments, the margin of each particle,
   scored by the shipped Whisper with no prompt (``plain``) and with the hotword prompt
   (``biased``), cached as ``<set>_particles.json`` with the seconds it took;
3. ``sweep --set S --prompt P --margins ...``: the product's recount (``services.singlish.read``
   with the particle verdicts added) at each margin, scored by ``shared/singlish/score.py``.
   Margins are chosen on dev and train only; unseen is run once at the chosen one.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.inputs import CACHE_DIR
from bench.quality import _score_singlish
from bench.report import console, table
from research.singlish_recount import DEFAULT_RATING, recount
from services.domain import Utterance, Word
from services.singlish.confidence import Rating
from services.singlish.dictionary import Corrections, load_corrections
from services.singlish.particles import (
    PARTICLE,
    RULE,
    clause_ends,
    particle_margins,
)

SETS = {
    "dev": CACHE_DIR / "singlish",
    "train": CACHE_DIR / "singlish_train",
    "unseen": CACHE_DIR / "singlish_unseen",
    "train_noisy": CACHE_DIR / "singlish_train_noisy",  # research/noisy_tune.py
}
PROMPTS = ("plain", "biased")


def hyp_dir(name: str) -> Path:
    return SETS[name].parent / f"{SETS[name].name}_hyp_auto"


def utterances(evidence: list[dict[str, Any]]) -> list[Utterance]:
    return [
        Utterance(s["speaker"], s["start"], s["end"], tuple(Word(*w) for w in s["words"]))
        for s in evidence
    ]


def hear(name: str) -> None:
    """The default pipeline over set ``name`` (made if needed), its evidence stored."""
    from bench.quality import segment_evidence
    from config import Settings
    from processing.progress import Unwatched
    from processor import load_engines, process_audio
    from research.calibrate_confidence import train_set
    from research.noisy_tune import noisy_train_set
    from services.audio import decode_audio
    from services.domain import SpeakerHints

    makers = {"train": train_set, "train_noisy": noisy_train_set}
    ref_dir = makers[name]() if name in makers else SETS[name]
    out = hyp_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    engines = load_engines(Settings())
    for conversation in json.loads((ref_dir / "manifest.json").read_text())["conversations"]:
        audio = decode_audio(ref_dir / f"{conversation}.wav")
        heard = process_audio(audio, SpeakerHints(), engines, Unwatched())
        evidence = segment_evidence(heard.analysis)
        (out / f"{conversation}.evidence.json").write_text(json.dumps(evidence))
        console.print(f"heard {conversation}: {len(heard.analysis.occurrences)} occurrences")


def listen(name: str) -> None:
    """Every clause end's particle margins, plain and biased, cached with the seconds spent."""
    from config import Settings
    from services.audio import decode_audio
    from services.singlish import hotword_prompt
    from services.singlish.verification import load_verifier

    verifier = load_verifier(Settings())
    assert verifier is not None
    corrections = load_corrections()
    prompts = {"plain": "", "biased": hotword_prompt()}
    cached: dict[str, Any] = {"seconds": {p: 0.0 for p in PROMPTS}, "conversations": {}}
    for path in sorted(hyp_dir(name).glob("*.evidence.json")):
        conversation = path.name.removesuffix(".evidence.json")
        audio = decode_audio(SETS[name] / f"{conversation}.wav")
        ends = []
        for utterance in utterances(json.loads(path.read_text())):
            for clause in clause_ends(utterance, corrections):
                last = clause.words[-1]
                row: dict[str, Any] = {
                    "speaker": utterance.speaker,
                    "start": last.start,
                    "end": last.end,
                    "heard": last.text.strip(),
                }
                for prompt, text in prompts.items():
                    started = time.perf_counter()
                    row[prompt] = particle_margins(audio, clause, verifier, text)
                    cached["seconds"][prompt] += time.perf_counter() - started
                ends.append(row)
        cached["conversations"][conversation] = ends
        console.print(f"{conversation}: {len(ends)} clause ends")
    cached["seconds"] = {p: round(s, 1) for p, s in cached["seconds"].items()}
    (SETS[name].parent / f"{SETS[name].name}_particles.json").write_text(json.dumps(cached))
    console.print(cached["seconds"])


def verdicts_for(ends: list[dict[str, Any]], prompt: str, only: str | None) -> list[dict]:
    """The particle verdicts ``listen_for_particles`` would have stored (``only``: one
    particle's margin instead of the best's)."""
    out = []
    for end in ends:
        margins = end[prompt] if only is None else {only: end[prompt][only]}
        best = max(margins, key=lambda p: margins[p])
        out.append(
            {
                "speaker": end["speaker"], "start": end["start"], "end": end["end"],
                "heard": end["heard"], "says": best, "rule": RULE, "verifier": PARTICLE,
                "margin": round(margins[best], 3),
            }
        )  # fmt: skip
    return out


def score(
    name: str,
    corrections: Corrections,
    particles: dict[str, list[dict]],
    rating: Rating | None = None,
) -> dict:
    """The recount of set ``name`` with ``particles`` (conversation → verdicts) added (with
    ``rating``: what counts at its threshold)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        names = []
        for path in sorted(hyp_dir(name).glob("*.evidence.json")):
            conversation = path.name.removesuffix(".evidence.json")
            names.append(conversation)
            evidence = json.loads(path.read_text())
            extra = particles.get(conversation, [])
            for segment in evidence:
                segment["verdicts"] = segment["verdicts"] + [
                    v
                    for v in extra
                    if v["speaker"] == segment["speaker"]
                    and segment["start"] - 1e-6 <= v["start"]
                    and v["end"] <= segment["end"] + 1e-6
                ]
            document = recount(evidence, corrections, rating)
            (out / f"{conversation}.json").write_text(json.dumps(document))
        return _score_singlish(SETS[name], out, names)


def sweep(name: str, prompt: str, margins: list[float], only: str | None) -> None:
    cached = json.loads((SETS[name].parent / f"{SETS[name].name}_particles.json").read_text())
    particles = {c: verdicts_for(ends, prompt, only) for c, ends in cached["conversations"].items()}
    shipped = load_corrections()
    rows = []
    for margin in [math.inf, *margins]:
        corrections = replace(shipped, verify_margins={**shipped.verify_margins, PARTICLE: margin})
        rows.append([margin])
        for rating in (None, DEFAULT_RATING):
            o = score(name, corrections, particles, rating)["overall"]
            rows[-1] += [o["hyp"], o["tp"], o["precision"], o["recall"], o["f1"]]
    columns = ["particle margin", "hyp", "tp", "P", "R", "F1"]
    columns += ["hyp @0.7", "tp", "P", "R", "F1"]
    console.print(table(f"{name}, {prompt}, {only or 'best particle'}", columns, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("step", choices=("hear", "listen", "sweep"))
    parser.add_argument("--set", choices=list(SETS), default="dev")
    parser.add_argument("--prompt", choices=PROMPTS, default="plain")
    parser.add_argument("--only", help="sweep: one particle only")
    parser.add_argument("--margins", nargs="+", type=float, default=[0, 1, 2, 3, 4, 6, 8])
    args = parser.parse_args()
    if args.step == "hear":
        hear(args.set)
    elif args.step == "listen":
        listen(args.set)
    else:
        sweep(args.set, args.prompt, args.margins, args.only)


if __name__ == "__main__":
    main()
