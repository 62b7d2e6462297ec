"""Environment construction for evaluation: D4RL's MuJoCo tasks, the built-in multimodal fork and Fetch tasks."""

from __future__ import annotations

import warnings
from typing import Sequence

import gymnasium
import numpy as np

from lom.data.minari_source import recover_minari_env
from lom.data.types import DatasetSpec
from lom.envs.mujoco_notices import hide_known_mujoco_notices
from lom.errors import LOMError
from lom.fetch import env as fetch
from lom.fork import env as fork

fork.register_env()
fetch.register_envs()


def make_env(spec: DatasetSpec, seed: int | None = None) -> gymnasium.Env:
    """The env to evaluate `spec` in, taking actions in [-1, 1]; seeded (env and action space) when `seed` is given."""
    env = _rescaled(_make(spec))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def action_bounds(spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """The env's own action bounds: make_env's env takes actions in [-1, 1] and maps them linearly onto these."""
    env = _make(spec)
    try:
        return env.action_space.low, env.action_space.high
    finally:
        env.close()


def make_vector_env(spec: DatasetSpec, num_envs: int, seed: int | Sequence[int]) -> gymnasium.vector.VectorEnv:
    """`num_envs` copies in a SyncVectorEnv (gymnasium's default next-step autoreset), already reset with `seed`
    (copy i gets seed + i, or seed[i] for a list), so the first reset() afterwards, with or without a seed, is
    deterministic."""
    if num_envs < 1:
        raise LOMError(f"num_envs must be at least 1, got {num_envs} — pass a positive number of evaluation envs")
    envs = gymnasium.vector.SyncVectorEnv([lambda: _rescaled(_make(spec)) for _ in range(num_envs)])
    envs.reset(seed=list(seed) if isinstance(seed, Sequence) else seed)
    envs.action_space.seed(seed[0] if isinstance(seed, Sequence) else seed)
    return envs


def _make(spec: DatasetSpec) -> gymnasium.Env:
    hide_known_mujoco_notices()
    if spec.source == "minari":
        # The dataset records its env with any non-default constructor arguments; rebuild exactly that one.
        return recover_minari_env(spec)
    kwargs = {"max_episode_steps": spec.max_episode_steps} if spec.max_episode_steps else {}
    try:
        with warnings.catch_warnings():
            # D4RL's data come from the v4 MuJoCo models, so gymnasium's "upgrade to v5" notice is expected noise.
            warnings.filterwarnings("ignore", message=".*is out of date.*")
            return gymnasium.make(spec.env_id, **kwargs)
    except gymnasium.error.DependencyNotInstalled as exc:
        raise LOMError(
            f"cannot create environment {spec.env_id!r} for {spec.name}: {exc} — install it with "
            "`pip install 'gymnasium[mujoco]'`"
        ) from exc
    except (gymnasium.error.Error, ImportError, OSError) as exc:
        raise LOMError(
            f"cannot create environment {spec.env_id!r} for {spec.name}: {exc} — check the env id; MuJoCo tasks "
            "need `pip install 'gymnasium[mujoco]'`"
        ) from exc


def _rescaled(env: gymnasium.Env) -> gymnasium.Env:
    """Let the agent act in [-1, 1] whatever the env's own action bounds are."""
    space = env.action_space
    name = env.spec.id if env.spec else type(env.unwrapped).__name__
    if not isinstance(space, gymnasium.spaces.Box):
        raise LOMError(f"environment {name} has a {type(space).__name__} action space — LOM needs continuous (Box) "
                       "actions; pick a continuous-control env")
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise LOMError(f"environment {name} has unbounded actions — LOM acts in [-1, 1] and needs finite bounds to "
                       "map onto; pick an env with a bounded action space")
    if np.allclose(space.low, -1.0) and np.allclose(space.high, 1.0):
        return env
    unit = np.ones(space.shape, dtype=space.dtype)
    return gymnasium.wrappers.RescaleAction(env, -unit, unit)
