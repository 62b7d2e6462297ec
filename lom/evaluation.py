"""Roll out a deterministic policy and score it: all episodes at once in a vector env, or one after another.

Episode i is always reset with seed `seed + i`, so both ways see the same episodes and a given (seed, step) is
evaluated identically across agents and across a resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from lom.data.types import DatasetSpec

Policy = Callable[[torch.Tensor], torch.Tensor]


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


def _policy_numpy(policy: Policy, normalizer, device: torch.device, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)
        return policy(normalizer(obs_t)).cpu().numpy()


def evaluate(policy: Policy, normalizer, spec: DatasetSpec, episodes: int, seed: int, device: torch.device,
             vectorized: bool = True) -> EvalResult:
    """Return and D4RL-normalised score of `episodes` episodes of `policy` (which takes standardised states)."""
    run = _evaluate_vectorized if vectorized else _evaluate_sequential
    returns = run(policy, normalizer, spec, episodes, seed, device)
    return EvalResult(returns, np.asarray(spec.normalized_score(returns), dtype=np.float64))


def _evaluate_vectorized(policy, normalizer, spec, episodes, seed, device) -> np.ndarray:
    from lom.envs import make_vector_env

    envs = make_vector_env(spec, episodes, seed)
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes)
        running = np.ones(episodes, dtype=bool)
        while running.any():
            obs, reward, terminated, truncated, _ = envs.step(_policy_numpy(policy, normalizer, device, obs))
            returns += np.where(running, reward, 0.0)
            # Finished envs are auto-reset by the vector env; their later rewards belong to episodes we don't count.
            running &= ~(terminated | truncated)
        return returns
    finally:
        envs.close()


def _evaluate_sequential(policy, normalizer, spec, episodes, seed, device) -> np.ndarray:
    from lom.envs import make_env

    env = make_env(spec)
    try:
        returns = np.zeros(episodes)
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            done = False
            while not done:
                action = _policy_numpy(policy, normalizer, device, obs[None])[0]
                obs, reward, terminated, truncated, _ = env.step(action)
                returns[i] += reward
                done = terminated or truncated
        return returns
    finally:
        env.close()
