"""Where a run computes: `--device` turned into a `torch.device` with an index, checked before anything is written
and made current so that streams, graphs and generators belong to it; and how many CPU threads torch uses."""

from __future__ import annotations

import os

import torch

from lom.errors import LOMError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
THREADS_VARIABLE = "OMP_NUM_THREADS"


def select_device(name: str) -> torch.device:
    """`--device` as a device with an index: auto is the current CUDA device when PyTorch sees one, else the CPU;
    cuda is the current CUDA device; cuda:N must exist. Anything else is refused in one line."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise LOMError(f"--device {name!r} is not a device: use {DEVICE_CHOICES}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise LOMError(f"--device {name!r} is not supported: use {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        raise LOMError(f"--device {name} asked for, but PyTorch sees no CUDA GPU; use --device cpu")
    count = torch.cuda.device_count()
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= count:
        raise LOMError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return torch.device("cuda", index)


def activate(device: torch.device) -> None:
    """Make `device` the current CUDA device (a no-op for the CPU): the side stream and graphs of captured steps
    and the default generator are the current device's."""
    if device.type == "cuda":
        torch.cuda.set_device(device)


def set_torch_threads() -> int:
    """One CPU thread, unless OMP_NUM_THREADS asks for more (PyTorch has then taken that count); return the count.

    On an idle 2-core machine two threads ran LOM's step up to 1.7x faster than one, but once another process started
    beside the run they ran up to 3x slower than one thread, and a count chosen from the load at start cannot see
    load that comes later (docs/runs.md, "Threads"). A CPU run is repeatable bit for bit at a given count."""
    if not os.environ.get(THREADS_VARIABLE):
        torch.set_num_threads(1)
    return torch.get_num_threads()
