"""Roll out a deterministic policy and score it, all episodes at once in a vector env; or the policies of S stacked
seeds at once, each on its own episodes (`evaluate_seeds`).

Episode i is always reset with seed `seed + i`, so a given (seed, step) is evaluated identically across agents,
across a resume and whatever seeds share a process (and as one episode after another would: tests/plain_paths.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from lom.data.types import DatasetSpec

TensorPolicy = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvalResult:
    returns: np.ndarray
    normalized_scores: np.ndarray

    @property
    def summary(self) -> dict[str, float]:
        return {
            "return_mean": float(self.returns.mean()),
            "return_std": float(self.returns.std()),
            "normalized_score": float(self.normalized_scores.mean()),
            "normalized_score_std": float(self.normalized_scores.std()),
        }


def _policy_numpy(policy: TensorPolicy, normalizer, device: torch.device, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)
        return policy(normalizer(obs_t)).cpu().numpy()


def evaluate(policy: TensorPolicy, normalizer, spec: DatasetSpec, episodes: int, seed: int,
             device: torch.device) -> EvalResult:
    """Return and D4RL-normalised score of `episodes` episodes of `policy` (standardised states (B, O) -> actions)."""
    return evaluate_seeds(lambda obs: policy(obs[0]).unsqueeze(0), normalizer, spec, episodes, [seed], device)[0]


def evaluate_seeds(policy: TensorPolicy, normalizer, spec: DatasetSpec, episodes: int, seeds: Sequence[int],
                   device: torch.device) -> list[EvalResult]:
    """`evaluate` for S stacked policies at once, (S, E, O) -> (S, E, A): policy s plays its own `episodes`
    episodes, seeded from seeds[s] as `evaluate` would, all S·E of them in one vector env with one policy call per
    step."""
    from lom.envs import make_vector_env

    s, e = len(seeds), episodes
    episode_seeds = [seed + i for seed in seeds for i in range(e)]
    envs = make_vector_env(spec, s * e, episode_seeds)
    try:
        obs, _ = envs.reset(seed=episode_seeds)
        returns = np.zeros(s * e)
        running = np.ones(s * e, dtype=bool)
        while running.any():
            actions = _policy_numpy(policy, normalizer, device, obs.reshape(s, e, -1))
            obs, reward, terminated, truncated, _ = envs.step(actions.reshape(s * e, -1))
            returns += np.where(running, reward, 0.0)
            # Finished envs are auto-reset by the vector env; their later rewards belong to episodes we don't count.
            running &= ~(terminated | truncated)
    finally:
        envs.close()
    return [EvalResult(r, np.asarray(spec.normalized_score(r), dtype=np.float64)) for r in returns.reshape(s, e)]

