"""``python -m research.singlish_misses --set dev|train``: every reference turn of a generated
tune set that says a target word, beside the words the pipeline heard over it (from the
evidence ``python -m bench quality`` / ``python -m research.particles hear`` stored), to read
what Whisper writes for the words it misses. Read it on the tune sets only: dictionary rules
come from here, never from the never-tuned set.
"""

from __future__ import annotations

import argparse
import json
import sys

from bench.report import SHARED
from research.particles import SETS, hyp_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--set", choices=[s for s in SETS if s != "unseen"], default="dev")
    args = parser.parse_args()
    sys.path.insert(0, str(SHARED / "singlish"))
    from singlish_words import count_targets

    for path in sorted(hyp_dir(args.set).glob("*.evidence.json")):
        conversation = path.name.removesuffix(".evidence.json")
        segments = json.loads(path.read_text())
        for line in (SETS[args.set] / f"{conversation}.stm").read_text().splitlines():
            _, _, _, a, b, text = line.split(" ", 5)
            start, end = float(a), float(b)
            if not any(count_targets(text).values()):
                continue
            heard = " | ".join(
                "".join(w[2] for w in s["words"] if w[0] < end and w[1] > start).strip()
                for s in segments
                if s["start"] < end and s["end"] > start
            )
            print(f"{conversation} {start:6.1f} said:  {text}")
            print(f"{'':>{len(conversation) + 7}} heard: {heard}")


if __name__ == "__main__":
    main()
