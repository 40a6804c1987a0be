"""``python -m research.prior_margins score --sets dev train noisy_voices``: does the audio, rather
than Whisper's own language model, favour the Singlish reading?

The second listen (:mod:`services.singlish.verification`) and the particle listen
(:mod:`services.singlish.particles`) compare two readings of a stretch by their teacher-forced
likelihood under Whisper, log P(Singlish | audio) - log P(as heard | audio). That margin mixes
two things: what the audio says, and how likely the decoder finds each text at all ("paiseh"
costs several nats more than "I said" whatever was said; so does one more token, a particle).
The pointwise mutual information with the audio removes the second: the same margin scored on
silence of the same length (the decoder's prior over the two texts, the prompt and context
included) subtracted from it.

``score`` reads the occurrences' evidence ``python -m research.calibrate_confidence hear``
cached for the tune sets, finds every place a verify rule matches and every clause end (the
particle listen's places), scores each reading on the audio and on silence, labels it right or
wrong against the reference (a reference turn within 1 s says the target word) and caches the
rows (``<set>.prior_margins.json`` beside the occurrences). ``report`` prints, per kind, how many
right and wrong places each margin keeps at each threshold. Tune sets only: the never-tuned set is
``bench quality``'s to report.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from bench.report import console, table
from research.calibrate_confidence import WORK, train_set
from research.verify_rules import said_there
from services.domain import Audio, Utterance, Word

KINDS = ("verify", "particle")


def _sets() -> dict[str, Any]:
    from bench.quality import singlish_dev_set
    from research.noisy_voices_tune import noisy_voices_set

    return {"dev": singlish_dev_set, "train": train_set, "noisy_voices": noisy_voices_set}


def _utterances(cached: dict[str, Any]) -> list[Utterance]:
    return [
        Utterance(
            s["speaker"],
            s["start"],
            s["end"],
            tuple(Word(float(a), float(b), str(t), float(p)) for a, b, t, p in s["words"]),
        )
        for s in cached["evidence"]
    ]


class PriorVerifier:
    """Scores each set of readings twice: on the audio, and on silence as long as it."""

    def __init__(self, verifier: Any) -> None:
        self.verifier = verifier
        self.prior: list[float] = []

    def log_probs(self, audio: Audio, texts: Any, prompt: str = "") -> list[float]:
        silence = Audio(np.zeros_like(audio.samples), audio.sample_rate)
        self.prior = self.verifier.log_probs(silence, texts, prompt)
        out: list[float] = self.verifier.log_probs(audio, texts, prompt)
        return out


def score(name: str, kinds: tuple[str, ...] = KINDS) -> None:
    from config import Settings
    from services.audio import decode_audio
    from services.singlish import hotword_prompt
    from services.singlish.dictionary import load_corrections
    from services.singlish.particles import PARTICLES, clause_ends, particle_margins
    from services.singlish.verification import _check, candidates, load_verifier

    ref_dir = _sets()[name]()
    verifier = load_verifier(Settings())
    assert verifier is not None
    both = PriorVerifier(verifier)
    corrections = load_corrections()
    prompt = hotword_prompt()
    rows: list[dict[str, Any]] = []
    for path in sorted((WORK / name).glob("*.json")):
        conversation = path.stem
        audio = decode_audio(ref_dir / f"{conversation}.wav")
        stm = ref_dir / f"{conversation}.stm"
        for utterance in _utterances(json.loads(path.read_text())):
            for candidate in candidates(utterance, corrections):
                rule = candidate[0]
                given = prompt if rule.verify == "biased" else ""
                verdict = _check(audio, utterance, candidate, both, given)
                heard, rewritten = both.prior
                rows.append(
                    {
                        "kind": "verify",
                        "conversation": conversation,
                        "start": verdict.start,
                        "end": verdict.end,
                        "heard": verdict.heard,
                        "says": verdict.says,
                        "verifier": rule.verify,
                        "margin": verdict.margin,
                        "prior": round(rewritten - heard, 3),
                        "right": said_there(stm, verdict.start, verdict.end, rule.says),
                    }
                )
            for clause in clause_ends(utterance, corrections) if "particle" in kinds else []:
                for kind, given in (("plain", ""), ("biased", prompt)):
                    margins = particle_margins(audio, clause, both, given)
                    prior = both.prior  # as written, then each of PARTICLES inserted
                    last = clause.words[-1]
                    for i, particle in enumerate(PARTICLES, start=1):
                        rows.append(
                            {
                                "kind": "particle",
                                "conversation": conversation,
                                "start": last.start,
                                "end": last.end,
                                "heard": last.text.strip(),
                                "says": particle,
                                "verifier": kind,
                                "margin": round(margins[particle], 3),
                                "prior": round(prior[i] - prior[0], 3),
                                "right": said_there(stm, last.start, last.end + 0.6, particle),
                            }
                        )
        console.print(f"{name} {conversation}: {len(rows)} rows")
    (WORK / f"{name}.prior_margins.json").write_text(json.dumps(rows))


THRESHOLDS = (6.0, 4.0, 2.0, 1.0, 0.0, -1.0, -2.0, -3.0, -4.0, -6.0, -8.0)


def report(names: list[str], kind: str, verifier: str) -> None:
    """Right and wrong places kept at each threshold, by the margin and by its PMI."""
    rows = [
        r
        for name in names
        for r in json.loads((WORK / f"{name}.prior_margins.json").read_text())
        if r["kind"] == kind and r["verifier"] == verifier
    ]
    right = sum(r["right"] for r in rows)
    out = []
    for threshold in THRESHOLDS:
        line: list[Any] = [threshold]
        for pmi in (False, True):
            kept = [r for r in rows if r["margin"] - (r["prior"] if pmi else 0.0) >= threshold]
            line += [sum(r["right"] for r in kept), sum(not r["right"] for r in kept)]
        out.append(line)
    title = f"{kind}/{verifier} on {', '.join(names)}: {len(rows)} places, {right} right"
    columns = ["kept at >=", "margin: right", "wrong", "PMI: right", "wrong"]
    console.print(table(title, columns, out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("score", "report"))
    parser.add_argument("--sets", nargs="+", default=["dev", "train", "noisy_voices"])
    parser.add_argument("--kind", choices=KINDS, default="verify")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--verifier", default="biased")
    args = parser.parse_args()
    if args.step == "score":
        for name in args.sets:
            score(name, tuple(args.kinds))
    else:
        report(args.sets, args.kind, args.verifier)


if __name__ == "__main__":
    main()
