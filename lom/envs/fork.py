"""The built-in multimodal benchmark: a gymnasium env plus its cached offline dataset.

A point mass starts near the origin and must get past a wall through one of three gaps worth 1.0, 0.5 and 0.25.
Each behaviour episode heads for one gap (the best one in only 10% of them), so the actions at the start states
have three modes. The best gap is the leftmost: the plain average of the modes, and IQL-like averages leaning
toward the best gap, fly into the wall between the gaps.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium
import h5py
import numpy as np

from lom.data.hdf5_writer import write_d4rl_hdf5
from lom.envs import fork_behaviour as behaviour
from lom.envs import fork_world as world
from lom.errors import LOMError

DATASET_NAME = "multimodal-fork-v0"
ENV_ID = "lom/MultimodalFork-v0"
MAX_EPISODE_STEPS = world.MAX_EPISODE_STEPS
DATASET_VERSION = 1  # bump when the generator changes so stale cached files are regenerated

# Measured with fork_behaviour.mean_return, 200,000 episodes for each of seeds 0, 1, 2, averaged (5.9e-05, 0.99992):
# the uniform random policy (REF_MIN) and the noisy behaviour mode of the best gap (REF_MAX). Re-measured by a test.
REF_MIN_SCORE = 6.0e-05
REF_MAX_SCORE = 0.9999


class MultimodalForkEnv(gymnasium.Env):
    """Observation: the (x, y) position (float32). Action: a velocity in [-1, 1]^2, scaled by fork_world.STEP."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gymnasium.spaces.Box(
            low=np.array([world.X_LIMITS[0], world.Y_LIMITS[0]], dtype=np.float32),
            high=np.array([world.X_LIMITS[1], world.Y_LIMITS[1]], dtype=np.float32),
            dtype=np.float32,
        )
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._position = np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._position = world.reset_positions(self.np_random, 1)[0]
        return self._position.astype(np.float32), {}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(1, 2)
        next_position, reward, terminated = world.move(self._position[None], action)
        self._position = next_position[0]
        return self._position.astype(np.float32), float(reward[0]), bool(terminated[0]), False, {}


def register_env() -> None:
    """Make ENV_ID available to gymnasium.make (idempotent)."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point=f"{__name__}:MultimodalForkEnv", max_episode_steps=MAX_EPISODE_STEPS)


def cache_dir() -> Path:
    return Path(os.environ.get("LOM_CACHE_DIR") or Path.home() / ".cache" / "lom")


def fork_dataset_path(seed: int = 0) -> Path:
    """The D4RL-format dataset for `seed`, generated into the cache unless a readable current copy is there."""
    path = cache_dir() / f"{DATASET_NAME}-seed{seed}.hdf5"
    if not _is_current(path, seed):
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


def _is_current(path: Path, seed: int) -> bool:
    """True if `path` is a complete dataset written by this generator version for `seed`."""
    try:
        with h5py.File(path, "r") as f:
            complete = all(key in f for key in ("observations", "actions", "rewards", "terminals", "infos/mode"))
            version, file_seed = int(f["metadata/version"][()]), int(f["metadata/seed"][()])
            return complete and version == DATASET_VERSION and file_seed == seed
    except (OSError, KeyError, ValueError):
        return False
