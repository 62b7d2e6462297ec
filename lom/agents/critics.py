"""The two critics LOM can use, both batched ensembles with Polyak-averaged targets.

- ExpectileCritic (default): IQL-style. V(s) is fit by expectile regression to min_k Q̄_k(s, a) on dataset actions,
  and each Q_k to r + γ(1 − d)·V(s'). It never queries actions outside the dataset while learning.
- SarsaCritic: the authors' released critic. Q_k fit to r + γ(1 − d)·min_k Q̄_k(s', clip(a' + ε)), where a' is the
  dataset's next action and ε clipped Gaussian smoothing noise; targets follow every `target_every` updates.

Both expose `value(obs, act)` = min over the target ensemble, the Q that scores modes and weights imitation, and
`action_values(obs, actions)`, the same for several actions per state at once.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from lom.agents.base import CountsUpdates, Losses, gradient_step
from lom.data.batches import Batch
from lom.networks import Generators, QEnsemble, adam, mlp, polyak_update
from lom.seeds import SeedStreams, seed_mean

# Clip of the sarsa critic's target smoothing noise (TD3's convention, kept by the authors).
SMOOTH_NOISE_CLIP = 0.5


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Asymmetric squared loss: |τ − 1(diff < 0)|·diff², averaged per seed: (S, B) -> (S,)."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return seed_mean(weight * diff.square())


def ensemble_td_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each member's mean squared TD error, summed over members (so each member learns at the single-net rate):
    q (S, K, B), target (S, B) -> (S,)."""
    return (q - target.unsqueeze(1)).square().mean(dim=2).sum(dim=1)


class TargetEnsembleCritic(nn.Module):
    """A Q ensemble with a Polyak-averaged copy; the copy's minimum over members is the value others read."""

    def __init__(self, obs_dim: int, act_dim: int, members: int, hidden, generators: Generators = None):
        super().__init__()
        self.q = QEnsemble(obs_dim, act_dim, members, hidden, generators)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)

    @torch.no_grad()
    def value(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """min_k Q̄_k(s, a), (S, B)."""
        return self.q_target(obs, act).min(dim=1).values

    @torch.no_grad()
    def action_values(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """`value` of M actions per state, actions (S, B, M, A) -> (S, B, M)."""
        return self.q_target.over_actions(obs, actions).min(dim=1).values


class ExpectileCritic(TargetEnsembleCritic):
    def __init__(self, obs_dim: int, act_dim: int, members: int, expectile: float, discount: float, tau: float,
                 lr: float, hidden=(256, 256), capturable: bool = False, generators: Generators = None):
        super().__init__(obs_dim, act_dim, members, hidden, generators)
        self.v = mlp(obs_dim, hidden, 1, generators)
        self.expectile, self.discount, self.tau = expectile, discount, tau
        # V and Q losses touch disjoint parameters, so one Adam over both equals two separate ones.
        self.optimizer = adam([*self.q.parameters(), *self.v.parameters()], lr, "fused", capturable)

    def state_value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.v(obs).squeeze(-1)

    def update(self, batch: Batch, rng: SeedStreams) -> Losses:
        with torch.no_grad():
            q_target = self.value(batch.obs, batch.act)
            td_target = batch.rew + self.discount * (1.0 - batch.done) * self.state_value(batch.next_obs)
        v_loss = expectile_loss(q_target - self.state_value(batch.obs), self.expectile)
        q_loss = ensemble_td_loss(self.q(batch.obs, batch.act), td_target)
        gradient_step(self.optimizer, v_loss + q_loss)
        polyak_update(self.q_target, self.q, self.tau)
        return {"critic/v_loss": v_loss.detach(), "critic/q_loss": q_loss.detach()}


class SarsaCritic(CountsUpdates, TargetEnsembleCritic):
    def __init__(self, obs_dim: int, act_dim: int, members: int, smooth_noise: float, discount: float, tau: float,
                 lr: float, target_every: int = 2, hidden=(256, 256), capturable: bool = False,
                 generators: Generators = None):
        super().__init__(obs_dim, act_dim, members, hidden, generators)
        self.smooth_noise, self.discount, self.tau, self.target_every = smooth_noise, discount, tau, target_every
        self.optimizer = adam(self.q.parameters(), lr, "fused", capturable)

    @property
    def period(self) -> int:
        return self.target_every

    def update(self, batch: Batch, rng: SeedStreams) -> Losses:
        with torch.no_grad():
            noise = (rng.normal_like(batch.next_act) * self.smooth_noise).clamp(-SMOOTH_NOISE_CLIP, SMOOTH_NOISE_CLIP)
            next_act = (batch.next_act + noise).clamp(-1.0, 1.0)
            td_target = batch.rew + self.discount * (1.0 - batch.done) * self.value(batch.next_obs, next_act)
        q_loss = ensemble_td_loss(self.q(batch.obs, batch.act), td_target)
        gradient_step(self.optimizer, q_loss)
        self.updates += 1
        if self.updates % self.target_every == 0:
            polyak_update(self.q_target, self.q, self.tau)
        return {"critic/q_loss": q_loss.detach()}
