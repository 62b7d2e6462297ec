"""Checkpoints: the whole training state in one file, written atomically, plus the RNG states that make a resumed
run continue exactly where the interrupted one stopped."""

from __future__ import annotations

import contextlib
import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from lom.errors import LOMError
from lom.io import atomic_path
from lom.run_folder import PROGRESS

# The layout of an agent's state in a checkpoint: 2 since every network has a seed axis first (lom/seeds.py). A
# checkpoint without it comes from older code and is refused (lom/training/resume.py).
LAYOUT = 2


def capture_rng(device: torch.device) -> dict:
    """The global generators' states: Python's, NumPy's, the CPU's and, on a CUDA device, that device's alone (a
    checkpoint then resumes on a machine with more or fewer GPUs, or none)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict, device: torch.device) -> None:
    """Undo `capture_rng`; the CUDA state is restored onto `device` when both the checkpoint and this run have one
    (a CPU checkpoint resumed on a GPU leaves the device's generator seeded as the run seeded it)."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    saved = state.get("cuda") if device.type == "cuda" else None
    if saved is not None:
        torch.cuda.set_rng_state(saved, device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save(path: str | os.PathLike, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def save_together(states: dict[Path, dict], where: dict | None = None) -> None:
    """Several checkpoints (the seeds of one process) as one set: every file is written in full before any is
    renamed into place, so a kill leaves them all at the old point or all at the new one, but for the moment the
    renames take. `where` ({"phase", "step"}) is written beside each as PROGRESS, for the sweep (lom.sweep
    groups seeds that can resume together without loading a checkpoint)."""
    with contextlib.ExitStack() as renames:
        for path, state in states.items():
            torch.save(state, renames.enter_context(atomic_path(path)))
            if where is not None:
                renames.enter_context(atomic_path(path.parent / PROGRESS)).write_text(json.dumps(where) + "\n")


def load(path: str | os.PathLike, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise LOMError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # a truncated or foreign file: say which one, not a pickle traceback
        raise LOMError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); delete it to start over") from exc
