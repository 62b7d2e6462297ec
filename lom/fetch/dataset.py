"""The Fetch datasets: their names, reference scores, and the cached files generated from `lom.fetch.behaviour`
(the environments that evaluate them are `lom.fetch.env`). docs/datasets.md describes them."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np

from lom.errors import LOMError
from lom.fetch import behaviour, world
from lom.fork.dataset import cache_dir, is_current
from lom.io import write_d4rl_hdf5

DATASET_NAMES = tuple(world.TASKS)
MAX_EPISODE_STEPS = world.MAX_EPISODE_STEPS
# Bump when the generator or its metadata change so stale cached files are regenerated.
DATASET_VERSION = 1
# Each dataset's (REF_MIN_SCORE, REF_MAX_SCORE): the uniform random policy's mean return and the best mode's
# demonstrator's (with its noise), each over REFERENCE_EPISODES episodes from reference seed 0, measured by
# `python -m lom.fetch.modes --measure` (about a minute per dataset). The best demonstrator fails now and then in
# PickAndPlace (3 of 1,000 episodes), so there a policy that always reaches the best zone scores 100.3.
REFERENCE_EPISODES = 1000
REFERENCES = {
    "fetch-reach-multimodal-v0": (0.0461, 1.0),
    "fetch-push-multimodal-v0": (0.0146, 1.0),
    "fetch-pickandplace-multimodal-v0": (0.0, 0.997),
}


def measure_references(name: str, num_episodes: int = REFERENCE_EPISODES, seed: int = 0) -> tuple[float, float]:
    """(uniform random policy's mean return, best mode's demonstrator's mean return), deterministic in `seed`."""
    task = world.TASKS[name]
    best = int(np.argmax(task.worths))
    low = behaviour.mean_return(task, behaviour.uniform_policy, num_episodes, seed)
    high = behaviour.mean_return(task, lambda rng: behaviour.demonstrator(task, best, rng), num_episodes, seed)
    return low, high


def generate_dataset(name: str, seed: int, num_episodes: int | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """D4RL rows (episodes back to back, with `infos/mode` and `infos/episode` per row) and the file's metadata."""
    task = world.TASKS[name]
    episodes, modes, reset_seeds = behaviour.generate_episodes(task, seed, num_episodes)
    lengths = np.array([len(ep.actions) for ep in episodes])
    terminals = np.concatenate([np.arange(n) == n - 1 if ep.terminated else np.zeros(n, bool)
                                for ep, n in zip(episodes, lengths)])
    timeouts = np.concatenate([np.arange(n) == n - 1 if not ep.terminated else np.zeros(n, bool)
                               for ep, n in zip(episodes, lengths)])
    arrays = {
        "observations": np.concatenate([ep.observations[:-1] for ep in episodes]),
        "actions": np.concatenate([ep.actions for ep in episodes]),
        "rewards": np.concatenate([ep.rewards for ep in episodes]),
        "next_observations": np.concatenate([ep.observations[1:] for ep in episodes]),
        "terminals": terminals,
        "timeouts": timeouts,
        "infos/mode": np.repeat(modes, lengths).astype(np.int64),
        "infos/episode": np.repeat(np.arange(len(episodes)), lengths).astype(np.int64),
    }
    returns = np.array([ep.total for ep in episodes])
    ref_min, ref_max = REFERENCES[name]
    metadata = {
        "dataset_name": name,
        "env_id": task.env_id,
        "version": DATASET_VERSION,
        "seed": seed,
        "ref_min_score": ref_min,
        "ref_max_score": ref_max,
        "zones": task.zone_array,
        "zone_worths": np.asarray(task.worths),
        "mode_names": np.array(task.mode_names, dtype=h5py.string_dtype()),
        "mode_probs": np.asarray(behaviour.MODE_PROBS),
        "mode_returns": np.array([returns[modes == k].mean() if (modes == k).any() else np.nan
                                  for k in range(len(task.zones))]),
        "episode_modes": modes,
        "episode_reset_seeds": reset_seeds,
        "episode_returns": returns,
        "action_noise": behaviour.ACTION_NOISE,
    }
    return arrays, metadata


def dataset_path(name: str, seed: int = 0, progress: bool = True) -> Path:
    """The D4RL-format dataset `name` for `seed`, generated into the cache unless a readable current copy is there."""
    path = cache_dir() / f"{name}-seed{seed}.hdf5"
    if not is_current(path, seed, DATASET_VERSION):
        if progress:
            print(f"generating {name} (seed {seed}) into {path}: once, under a minute", file=sys.stderr)
        arrays, metadata = generate_dataset(name, seed)
        try:
            write_d4rl_hdf5(path, arrays, metadata)
        except OSError as exc:
            raise LOMError(
                f"cannot write the {name} dataset to {path}: {exc} — set LOM_CACHE_DIR to a writable folder"
            ) from exc
    return path

