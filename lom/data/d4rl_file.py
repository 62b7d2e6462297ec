"""Read D4RL-format HDF5 files and refuse ones whose keys, shapes or values the loader cannot trust."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from lom.errors import LOMError

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")
OPTIONAL_KEYS = ("timeouts", "next_observations")
FLOAT_KEYS = ("observations", "actions", "rewards", "next_observations")
FLAG_KEYS = ("terminals", "timeouts")
# Datasets store float32 actions that were clipped to [-1, 1]; rounding may put them a hair outside.
ACTION_TOLERANCE = 1e-4
_NDIM = {"observations": 2, "actions": 2, "next_observations": 2, "rewards": 1, "terminals": 1, "timeouts": 1}


def check_d4rl_layout(path: str | os.PathLike) -> None:
    """Cheap structural check (keys, ranks, lengths) without reading the arrays; raises LOMError."""
    with _open(path) as f:
        _check_shapes(
            path, {key: f[key].shape for key in (*REQUIRED_KEYS, *OPTIONAL_KEYS) if _has_dataset(f, key, path)}
        )


def read_d4rl_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The loader's keys of a D4RL-format file, validated: finite float32 floats, bool flags, clipped actions."""
    with _open(path) as f:
        keys = [key for key in (*REQUIRED_KEYS, *OPTIONAL_KEYS) if _has_dataset(f, key, path)]
        _check_shapes(path, {key: f[key].shape for key in keys})
        try:
            arrays = {key: f[key][()] for key in keys}
        except (OSError, ValueError) as e:
            raise LOMError(
                f"{path}: cannot read its arrays ({e}) — the file is damaged; delete it and fetch it again"
            ) from None
    return validate_d4rl_arrays(arrays, source=str(path))


def validate_d4rl_arrays(arrays: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Check shapes and values of in-memory D4RL-layout arrays; `source` names them in error messages."""
    _check_shapes(source, {key: np.shape(value) for key, value in arrays.items()})
    out = {}
    for key, value in arrays.items():
        value = np.asarray(value)
        if key in FLAG_KEYS:
            out[key] = _as_flags(source, key, value)
            continue
        if value.dtype.kind not in "biuf":
            raise LOMError(f"{source}: key '{key}' has non-numeric dtype {value.dtype} — it must hold numbers")
        value = value.astype(np.float32, copy=False)
        if not np.isfinite(value).all():
            raise LOMError(f"{source}: key '{key}' contains NaN or inf values — clean the dataset")
        out[key] = value
    out["actions"] = _checked_actions(source, out["actions"])
    return out


def folder_message(path: Path) -> str:
    """The one line for a folder given where an HDF5 file belongs, naming the .hdf5 files it holds."""
    inside = sorted(p.name for p in path.glob("*.hdf5"))
    hint = f" (it holds {', '.join(inside[:4])}{', …' if len(inside) > 4 else ''})" if inside else ""
    return f"dataset file {path} is a folder, not an HDF5 file — give the path of a .hdf5 file{hint}"


def _open(path: str | os.PathLike) -> h5py.File:
    if Path(path).is_dir():
        raise LOMError(folder_message(Path(path)))
    if not Path(path).is_file():
        raise LOMError(f"dataset file {path} does not exist — check the path")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise LOMError(f"{path} is not a readable HDF5 file ({e}) — it is truncated or corrupt; replace it") from None


def _has_dataset(f: h5py.File, key: str, path) -> bool:
    if key not in f:
        if key in REQUIRED_KEYS:
            raise LOMError(f"{path}: missing key '{key}' — a D4RL-format file needs {', '.join(REQUIRED_KEYS)}")
        return False
    if not isinstance(f[key], h5py.Dataset):
        raise LOMError(f"{path}: key '{key}' is a group, not an array — is this a D4RL-format file?")
    return True


def _check_shapes(source, shapes: dict[str, tuple[int, ...]]) -> None:
    for key, shape in shapes.items():
        if len(shape) != _NDIM[key]:
            raise LOMError(f"{source}: key '{key}' has shape {shape} but must be {_NDIM[key]}-D — fix the file")
    n = shapes["observations"][0]
    if n == 0:
        raise LOMError(f"{source}: key 'observations' is empty — the dataset has no rows")
    for key, shape in shapes.items():
        if shape[0] != n:
            raise LOMError(f"{source}: key '{key}' has {shape[0]} rows but 'observations' has {n} — fix the file")
    if "next_observations" in shapes and shapes["next_observations"] != shapes["observations"]:
        raise LOMError(
            f"{source}: key 'next_observations' has shape {shapes['next_observations']} but 'observations' has "
            f"{shapes['observations']} — fix the file"
        )


def _as_flags(source: str, key: str, value: np.ndarray) -> np.ndarray:
    if value.dtype == bool:
        return value
    if value.dtype.kind not in "biuf" or not np.isin(value, (0, 1)).all():
        raise LOMError(f"{source}: key '{key}' must hold booleans (0/1) — fix the file")
    return value != 0


def _checked_actions(source: str, actions: np.ndarray) -> np.ndarray:
    worst = float(np.abs(actions).max())
    if worst > 1.0 + ACTION_TOLERANCE:
        raise LOMError(
            f"{source}: key 'actions' has values up to {worst:.4g} in magnitude but must lie in [-1, 1] — "
            "rescale the actions to [-1, 1]"
        )
    return np.clip(actions, -1.0, 1.0)
