"""The plain forms of the speed-ups, which tests check the fast forms against (and benchmarks/throughput.py times):
LOM without its per-row mixture cache and batched kernels, and evaluation one episode after another."""

from __future__ import annotations

import numpy as np
import torch

from lom.agents.lom import LOMAgent
from lom.data.batches import DeviceDataset
from lom.data.types import DatasetSpec
from lom.networks import adam
from lom.training.evaluation import EvalResult, TensorPolicy, _policy_numpy


class UncachedLOMAgent(LOMAgent):
    """LOM whose frozen mixture is evaluated on every batch instead of once per dataset row."""

    def finish_pretraining(self, data: DeviceDataset) -> None:
        self.gmm.requires_grad_(False)


def plain_adam(optimizer: torch.optim.Adam) -> torch.optim.Adam:
    """The same parameters and learning rate under PyTorch's per-parameter Adam loop."""
    return adam([p for group in optimizer.param_groups for p in group["params"]], optimizer.defaults["lr"], "loop")


class PlainLOMAgent(UncachedLOMAgent):
    """... and with plain kernels: Adam's per-parameter loop, and Q scored one (state, action) row at a time."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.critic.optimizer = self.optimizers["critic"] = plain_adam(self.critic.optimizer)
        for name in ("gmm", "mode_value", "actor"):
            self.optimizers[name] = plain_adam(self.optimizers[name])

    def action_values(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        s, b, m, a = actions.shape
        states = obs.unsqueeze(2).expand(s, b, m, obs.shape[-1]).reshape(s, b * m, -1)
        return self.critic.value(states, actions.reshape(s, b * m, a)).view(s, b, m)


def evaluate_one_by_one(policy: TensorPolicy, normalizer, spec: DatasetSpec, episodes: int, seed: int,
                        device: torch.device) -> EvalResult:
    """`lom.training.evaluation.evaluate` one episode after another in one env (episode i reset with seed + i)."""
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
    finally:
        env.close()
    return EvalResult(returns, np.asarray(spec.normalized_score(returns), dtype=np.float64))
