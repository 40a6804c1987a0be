"""Which device a model runs on."""

from __future__ import annotations

from typing import Literal


def resolve_device(requested: str) -> Literal["cpu", "cuda"]:
    """``auto`` picks CUDA when torch sees a GPU, else the CPU."""
    if requested == "cpu":
        return "cpu"
    if requested == "cuda":
        return "cuda"
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def limit_torch_threads(threads: int) -> None:
    """torch's intra-op threads for this process (0: leave torch's default)."""
    if threads <= 0:
        return
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)
