"""``python -m research.phonetic_spots --sets dev train noisy_voices``: could a rendering
the dictionary does not list be found by its sound?

For every reference turn of a tune set that says a target word where the stored hearing
(``python -m research.calibrate_confidence hear``) has no occurrence of it (counted or not),
every run of one to three heard words over the turn is phonemised by espeak-ng and compared
with the target word's own phonemes (:func:`distance`: edit distance over broad phoneme
classes, divided by the target's length). Printed: how many missed words have a heard run
within each distance (what a sound-alike candidate could reach), and how many heard runs in
turns that do not say that word are as close (the places a second listen would have to
reject). Read it on the tune sets only.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from functools import cache

from bench.report import SHARED
from research.calibrate_confidence import WORK

CUTS = (0.0, 0.2, 0.34, 0.5)
# broad classes: voicing, vowel quality and length differ between espeak's voices and what
# Whisper's English spelling implies, so they are not told apart
_CLASSES = {
    "p": "P", "b": "P", "t": "T", "d": "T", "k": "K", "\u0261": "K", "g": "K",
    "s": "S", "z": "S", "ʃ": "S", "ʒ": "S", "f": "F", "v": "F", "θ": "F", "ð": "F",
    "tʃ": "C", "dʒ": "C", "h": "H", "m": "M", "n": "N", "ŋ": "N", "l": "L", "ɹ": "R",
    "r": "R", "j": "J", "w": "W", "ɬ": "L", "x": "H", "\u0294": "",
}  # fmt: skip
_VOWELS = set("aeiouæɑɒɔəɚɛɜɪʊʌɐɯyøœɤɵɨʉ")  # noqa: RUF001 (IPA letters)
_STRIP = re.compile(r"[ˈˌːˑ‿\-_ ̃]")


@cache
def phonemes(text: str) -> tuple[str, ...]:
    """Broad phoneme classes of ``text`` as espeak-ng's en-us voice says it; a run of vowels
    (a diphthong) is one ``V``."""
    ipa = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-v", "en-us", text],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    ipa = _STRIP.sub("", ipa.replace("\n", " ")).replace(" ", "")
    out: list[str] = []
    i = 0
    while i < len(ipa):
        two = ipa[i : i + 2]
        if two in _CLASSES:
            out.append(_CLASSES[two])
            i += 2
            continue
        ch = ipa[i]
        if ch in _VOWELS:
            if not out or out[-1] != "V":
                out.append("V")
        elif _CLASSES.get(ch):
            out.append(_CLASSES[ch])
        i += 1
    return tuple(out)


def distance(heard: str, target: str) -> float:
    """Edit distance between the phoneme classes of ``heard`` and ``target``, over the
    target's length: jiwer's character error rate, each class being one letter."""
    import jiwer

    return float(jiwer.cer("".join(phonemes(target)), "".join(phonemes(heard))))


def runs(words: list[str]) -> list[str]:
    return [" ".join(words[i : i + n]) for n in (1, 2, 3) for i in range(len(words) - n + 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", nargs="+", default=["dev", "train", "noisy_voices"])
    parser.add_argument("--show", action="store_true", help="print each miss and its nearest")
    args = parser.parse_args()
    sys.path.insert(0, str(SHARED / "singlish"))
    from singlish_words import TARGET_WORDS, count_targets, tokenize

    from research.calibrate_confidence import singlish_dev_set, train_set
    from research.noisy_voices_tune import noisy_voices_set

    makers = {"dev": singlish_dev_set, "train": train_set, "noisy_voices": noisy_voices_set}
    reach: Counter[tuple[str, float]] = Counter()
    missed: Counter[str] = Counter()
    false_spots: Counter[tuple[str, float]] = Counter()
    for name in args.sets:
        ref_dir = makers[name]()
        for path in sorted((WORK / name).glob("*.json")):
            cached = json.loads(path.read_text())
            stm = (ref_dir / f"{path.stem}.stm").read_text().splitlines()
            counted = [(o["start"], o["end"], o["word"]) for o in cached["occurrences"]]
            for line in stm:
                _, _, _, a, b, text = line.split(" ", 5)
                start, end = float(a), float(b)
                heard = tokenize(
                    " ".join(
                        w[2]
                        for s in cached["evidence"]
                        for w in s["words"]
                        if w[0] < end and w[1] > start
                    )
                )
                said = count_targets(text)
                for target in TARGET_WORDS:
                    got = sum(1 for s, e, w in counted if w == target and s < end and e > start)
                    lost = max(0, said[target] - got)
                    candidates = [r for r in runs(heard) if target not in r.split()]
                    best = min((distance(r, target) for r in candidates), default=9.0)
                    if lost:
                        missed[target] += lost
                        for cut in CUTS:
                            if best <= cut:
                                reach[(target, cut)] += lost
                        if args.show:
                            near = min(candidates, key=lambda r: distance(r, target), default="")
                            print(f"{name} {path.stem} {target}: {best:.2f} {near!r} | {text}")
                    if not said[target]:
                        for r in candidates:
                            d = distance(r, target)
                            for cut in CUTS:
                                if d <= cut:
                                    false_spots[(target, cut)] += 1
    print(f"{'word':8} {'missed':>6} " + " ".join(f"reach≤{c:<4} false≤{c:<4}" for c in CUTS))
    for target in TARGET_WORDS:
        cells = " ".join(f"{reach[(target, c)]:>10} {false_spots[(target, c)]:>10}" for c in CUTS)
        print(f"{target:8} {missed[target]:>6} {cells}")
    total = " ".join(
        f"{sum(reach[(t, c)] for t in TARGET_WORDS):>10} "
        f"{sum(false_spots[(t, c)] for t in TARGET_WORDS):>10}"
        for c in CUTS
    )
    print(f"{'all':8} {sum(missed.values()):>6} {total}")


if __name__ == "__main__":
    main()
