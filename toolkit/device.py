"""Where the heavy tensors live: the CPU, or a CUDA GPU when one is asked for (--device, or $P2_DEVICE).

Training steps, per-example gradients and predictions move their model and batches to `current()`;
everything they return, and every checkpoint, is on the CPU, so a run's files are the same kind of file
wherever it ran. The numbers themselves differ slightly between devices (other summation orders).
"""
import os

import torch

from toolkit.errors import P2Error

CHOICES = ("auto", "cpu", "cuda")
_current = torch.device("cpu")


def choose(name: str | None) -> torch.device:
    """Set the device from --device (else $P2_DEVICE, else "cpu"); "auto" takes CUDA when torch sees one."""
    global _current
    name = name or os.environ.get("P2_DEVICE") or "cpu"
    if name not in CHOICES:
        raise P2Error(f"--device / P2_DEVICE = {name!r}: choose one of {', '.join(CHOICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise P2Error("--device cuda: torch sees no CUDA GPU here (this torch build: "
                      f"{torch.__version__}); install a CUDA build of torch (README.md) or use --device cpu")
    _current = torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")
    return _current


def current() -> torch.device:
    return _current
