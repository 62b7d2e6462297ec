"""`load_transitions`: get a spec's data (download, generate or read) and build its transitions."""

from __future__ import annotations

from pathlib import Path

from lom.data.d4rl_file import read_d4rl_arrays
from lom.data.download import ensure_dataset_file
from lom.data.minari_source import load_minari_transitions
from lom.data.transitions import build_transitions
from lom.data.types import DatasetSpec, Transitions
from lom.errors import LOMError
from lom.fetch import dataset as fetch_dataset
from lom.fork import dataset as fork_dataset


def load_transitions(spec: DatasetSpec, progress: bool = True) -> Transitions:
    """Validated (s, a, r, s', a', done) transitions of the dataset `spec` names."""
    if spec.source == "minari":
        return load_minari_transitions(spec, progress)
    path = dataset_file(spec, progress)
    return build_transitions(read_d4rl_arrays(path), spec.max_episode_steps, str(path))


def dataset_file(spec: DatasetSpec, progress: bool = True) -> Path:
    """The local D4RL-format file behind a "d4rl", "file" or "builtin" spec, fetched or generated if needed."""
    if spec.source == "d4rl":
        return ensure_dataset_file(spec, progress)
    if spec.source == "file":
        return Path(spec.path)
    if spec.source == "builtin" and spec.name in fetch_dataset.DATASET_NAMES:
        return fetch_dataset.dataset_path(spec.name, progress=progress)
    if spec.source == "builtin":
        return fork_dataset.fork_dataset_path()
    raise LOMError(f"dataset {spec.name} has unknown source '{spec.source}' — use one from lom.data.resolve_dataset")
