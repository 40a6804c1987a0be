"""Make torchaudio importable beside a torch it was not compiled for (the ``pyannote`` extra).

pyannote.audio 4 imports torchaudio, and the newest torchaudio on PyPI (2.11.1) is built
against torch 2.11 with CUDA: beside this project's torch 2.13 (CPU build here; the GPU image
pins its own set, see docker/worker-gpu.Dockerfile) its compiled extension cannot load
(``libc10_cuda.so`` missing, or symbols of another torch), and ``import torchaudio`` raises.
torchaudio only loads that extension when its files exist, and the parts of torchaudio that
pyannote's diarization pipeline uses (Kaldi filterbanks, ``functional.resample``) are pure
Python on torch. So this script tries ``torchaudio/lib/*.so`` against the installed torch
and, if any cannot load, renames them all to ``*.so.unloadable``; if all load they are kept.
Idempotent; prints what it did. scripts/install.sh and the GPU image run it after installing
the extra; ``services.diarization`` names it when torchaudio still fails to import.

What is lost: torchaudio's compiled operators (its I/O backends, forced alignment, RNN-T
loss, CTC decoders), none of which the product calls. Audio reaches pyannote in memory
(``{"waveform", "sample_rate"}``), so torchcodec's decoder is never needed either.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

UNLOADABLE_SUFFIX = ".unloadable"


def torchaudio_lib_dir() -> Path | None:
    """torchaudio's ``lib`` directory, found without importing torchaudio."""
    spec = importlib.util.find_spec("torchaudio")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "lib"


def set_aside_unloadable(lib_dir: Path) -> list[tuple[Path, str]]:
    """If any shared object in ``lib_dir`` cannot load on the installed torch, rename them
    all (torchaudio needs its extension whole or not at all); returns (new path, reason)."""
    import torch

    libraries = sorted(lib_dir.glob("*.so"))
    reason = ""
    for library in libraries:
        try:
            torch.ops.load_library(str(library))
        except OSError as error:
            reason = f"{library.name}: {error.__cause__ or error}"
            break
    if not reason:
        return []
    set_aside = []
    for library in libraries:
        moved = library.with_name(library.name + UNLOADABLE_SUFFIX)
        library.rename(moved)
        set_aside.append((moved, reason))
    return set_aside


def main() -> int:
    lib_dir = torchaudio_lib_dir()
    if lib_dir is None or not lib_dir.is_dir():
        print("torchaudio is not installed: nothing to do")
        return 0
    for moved, reason in set_aside_unloadable(lib_dir):
        print(f"torchaudio: set aside {moved.name} ({reason}); its Python code stays usable")
    import torchaudio  # the proof: this raised before

    print(f"torchaudio {torchaudio.__version__} imports on torch {_torch_version()}")
    return 0


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


if __name__ == "__main__":
    sys.exit(main())
