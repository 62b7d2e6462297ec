"""Write arrays as a D4RL-format HDF5 file, atomically (used by the built-in benchmark and by lom.collect)."""

from __future__ import annotations

import os

import h5py
import numpy as np

from lom.io import atomic_path

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")


def write_d4rl_hdf5(path: str | os.PathLike, arrays: dict[str, np.ndarray], metadata: dict | None = None) -> None:
    """Write `arrays` (at least REQUIRED_KEYS, optionally next_observations) and `metadata/<key>` attributes-as-datasets.

    The file appears at `path` only once complete, so a crash never leaves a half-written dataset behind.
    """
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"write_d4rl_hdf5: missing arrays {missing}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in arrays.items():
                value = np.asarray(value)
                if key in ("terminals", "timeouts"):
                    value = value.astype(bool)
                elif value.dtype.kind == "f":
                    value = value.astype(np.float32)
                f.create_dataset(key, data=value)
            for key, value in (metadata or {}).items():
                f.create_dataset(f"metadata/{key}", data=value)
