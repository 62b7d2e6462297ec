"""What the data layer hands to the rest of the package."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

# Reference scores of data without any: normalized_score(R) == R, i.e. the raw return is reported.
RAW_RETURN_REFS = (0.0, 100.0)


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset comes from and how its returns are scored.

    source: "d4rl" (registry name, downloaded), "file" (an HDF5 path), "minari" or "builtin" (generated here).
    """

    name: str
    source: str
    env_id: str
    ref_min_score: float
    ref_max_score: float
    url: str | None = None
    path: str | None = None
    max_episode_steps: int | None = None
    # What the presets may know of the data besides its shape (lom/config.py `preset_for`); never a file's name.
    # standard_name: the D4RL name of a standard id (a D4RL name itself, a Minari MuJoCo id's D4RL counterpart, the
    # built-in benchmark's name); None for a file. env_family, kind: the environment (lower case, no version, e.g.
    # hopper, ant) and D4RL kind (e.g. medium-expert) the data is, as its id says or its file records in
    # `metadata/env_id` and `metadata/kind` (lom.collect writes both); None when unknown.
    standard_name: str | None = None
    env_family: str | None = None
    kind: str | None = None

    @property
    def table_name(self) -> str:
        """The name the presets' tables look up: the standard name, else the env id (a file's own name never
        counts, so the same file under another name trains with the same values)."""
        return self.standard_name or self.env_id

    def normalized_score(self, episode_return):
        """D4RL's normalisation: 100 * (R - R_min) / (R_max - R_min). Works on floats and numpy arrays."""
        return 100.0 * (np.asarray(episode_return, dtype=np.float64) - self.ref_min_score) / (
            self.ref_max_score - self.ref_min_score
        )


@dataclass
class Transitions:
    """(s, a, r, s', a', done) rows; s' and a' never come from another episode.

    All float32; actions in [-1, 1]. `terminals` is 1.0 only for true terminations (not time-limit cuts).
    For terminal rows `next_actions` is a copy of `actions` (it is masked by the done flag anyway).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    next_actions: np.ndarray
    terminals: np.ndarray

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
