"""The built-in multimodal benchmark's dataset: its name, reference scores, and the cached file generated from
`lom.fork.behaviour` (the environment that evaluates it is `lom.fork.env`).

A point mass starts near the origin and must get past a wall through one of three gaps worth 1.0, 0.5 and 0.25.
Each behaviour episode heads for one gap (the best one in only 10% of them), so the actions at the start states
have three modes. The best gap is the leftmost: the plain average of the modes, and IQL-like averages leaning
toward the best gap, fly into the wall between the gaps.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from lom.errors import LOMError
from lom.fork import behaviour
from lom.fork import world
from lom.io import write_d4rl_hdf5

DATASET_NAME = "multimodal-fork-v0"
ENV_ID = "lom/MultimodalFork-v0"
MAX_EPISODE_STEPS = world.MAX_EPISODE_STEPS
# Bump when the generator or its metadata change so stale cached files are regenerated (2: REF_MAX_SCORE 1.0).
DATASET_VERSION = 2

# REF_MIN: the uniform random policy's return, measured with fork_behaviour.mean_return, 200,000 episodes for each of
# seeds 0, 1, 2, averaged (5.9e-05; re-measured by a test). REF_MAX: the best gap's reward, the highest return an
# episode can earn, so that a perfect policy scores exactly 100 (the noisy behaviour mode of the best gap earns
# 0.99992 of it; a reference below the best return let a perfect run score 100.01).
REF_MIN_SCORE = 6.0e-05
REF_MAX_SCORE = max(world.GAP_REWARDS)


def cache_dir() -> Path:
    return Path(os.environ.get("LOM_CACHE_DIR") or Path.home() / ".cache" / "lom")


def fork_dataset_path(seed: int = 0) -> Path:
    """The D4RL-format dataset for `seed`, generated into the cache unless a readable current copy is there."""
    path = cache_dir() / f"{DATASET_NAME}-seed{seed}.hdf5"
    if not is_current(path, seed, DATASET_VERSION):
        try:
            _write_dataset(path, seed)
        except OSError as exc:
            raise LOMError(
                f"cannot write the {DATASET_NAME} dataset to {path}: {exc} — set LOM_CACHE_DIR to a writable folder"
            ) from exc
    return path


def _write_dataset(path: Path, seed: int) -> None:
    arrays, mode_returns = behaviour.generate_dataset(seed)
    metadata = {
        "dataset_name": DATASET_NAME,
        "env_id": ENV_ID,
        "version": DATASET_VERSION,
        "seed": seed,
        "ref_min_score": REF_MIN_SCORE,
        "ref_max_score": REF_MAX_SCORE,
        "gap_x": world.GAP_X,
        "gap_rewards": world.GAP_REWARDS,
        "mode_returns": mode_returns,
        "mode_probs": behaviour.MODE_PROBS,
        "action_noise": behaviour.ACTION_NOISE,
    }
    write_d4rl_hdf5(path, arrays, metadata)


def is_current(path: Path, seed: int, version: int) -> bool:
    """True if `path` is a complete cached dataset written by generator `version` for `seed` (the fork's, the Fetch
    tasks')."""
    try:
        with h5py.File(path, "r") as f:
            complete = all(key in f for key in ("observations", "actions", "rewards", "terminals", "infos/mode"))
            file_version, file_seed = int(f["metadata/version"][()]), int(f["metadata/seed"][()])
            return complete and file_version == version and file_seed == seed
    except (OSError, KeyError, ValueError):
        return False
