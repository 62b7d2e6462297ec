"""Atomic file writes: a crash leaves either the old file or the new one, never half of one. JSON, and D4RL-format
HDF5 files (the built-in benchmark's and lom.collect's datasets)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

# mkstemp creates files 0600; atomic files get the permissions an ordinary open() would. Read once: reading the
# umask means setting it, which would race with other threads creating files.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


D4RL_REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")


def write_d4rl_hdf5(path: str | os.PathLike, arrays: dict[str, np.ndarray], metadata: dict | None = None) -> None:
    """Write `arrays` (at least D4RL_REQUIRED_KEYS, optionally next_observations) and `metadata/<key>`
    attributes-as-datasets, as a D4RL-format HDF5 file.

    The file appears at `path` only once complete, so a crash never leaves a half-written dataset behind.
    """
    import h5py  # here: the report and the sweep write JSON through this module and never need h5py

    missing = [k for k in D4RL_REQUIRED_KEYS if k not in arrays]
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
