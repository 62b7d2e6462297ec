"""Offline datasets: names -> specs (registry), files (download / built-in / Minari) -> transitions."""

from lom.data.download import dataset_cache_dir
from lom.data.loading import dataset_file, load_transitions
from lom.data.registry import D4RL_DATASETS, resolve_dataset
from lom.data.types import DatasetSpec, Transitions

__all__ = [
    "D4RL_DATASETS",
    "DatasetSpec",
    "Transitions",
    "dataset_cache_dir",
    "dataset_file",
    "load_transitions",
    "resolve_dataset",
]
