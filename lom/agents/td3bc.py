"""TD3+BC (Fujimoto & Gu, NeurIPS 2021): TD3 whose actor loss adds a behaviour-cloning term,
λ = α / mean|Q(s, π(s))| scaling the Q term so the two are balanced whatever the reward scale."""

from __future__ import annotations

import copy

import torch

from lom.agents.base import Agent, CountsUpdates, Losses, gradient_step
from lom.agents.critics import ensemble_td_loss
from lom.agents.configs import TD3BCConfig
from lom.config import TrainConfig
from lom.data.batches import Batch, DeviceDataset
from lom.networks import DeterministicActor, QEnsemble, polyak_update
from lom.seeds import seed_mean


class TD3BCAgent(CountsUpdates, Agent):
    name = "TD3BC"

    def __init__(self, obs_dim: int, act_dim: int, cfg: TrainConfig, hp: TD3BCConfig = TD3BCConfig(),
                 capturable: bool = False, seeds=None):
        super().__init__(seeds)
        self.hp, self.discount, self.tau, gens = hp, cfg.discount, cfg.tau, self.rng.init_generators
        self.q = QEnsemble(obs_dim, act_dim, hp.num_critics, cfg.hidden, gens)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.actor = DeterministicActor(obs_dim, act_dim, cfg.hidden, gens)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.optimizers = {
            "critic": torch.optim.Adam(self.q.parameters(), lr=hp.lr, capturable=capturable),
            "actor": torch.optim.Adam(self.actor.parameters(), lr=hp.lr, capturable=capturable),
        }

    @property
    def period(self) -> int:
        return self.hp.policy_delay

    def train_step(self, data: DeviceDataset) -> Losses:
        batch = data.sample(self.rng, self.hp.batch_size)
        losses = self.update_critic(batch)
        self.updates += 1
        if self.updates % self.hp.policy_delay == 0:
            losses.update(self.update_actor(batch))
            polyak_update(self.q_target, self.q, self.tau)
            polyak_update(self.actor_target, self.actor, self.tau)
        return losses

    def update_critic(self, batch: Batch) -> Losses:
        hp = self.hp
        with torch.no_grad():
            noise = (self.rng.normal_like(batch.act) * hp.policy_noise).clamp(-hp.noise_clip, hp.noise_clip)
            next_act = (self.actor_target(batch.next_obs) + noise).clamp(-1.0, 1.0)
            next_q = self.q_target(batch.next_obs, next_act).min(dim=1).values
            td_target = batch.rew + self.discount * (1.0 - batch.done) * next_q
        loss = ensemble_td_loss(self.q(batch.obs, batch.act), td_target)
        gradient_step(self.optimizers["critic"], loss)
        return {"critic/q_loss": loss.detach()}

    def update_actor(self, batch: Batch) -> Losses:
        pi = self.actor(batch.obs)
        q = self.q(batch.obs, pi)[:, 0]  # the first member's Q, (S, B)
        lam = self.hp.alpha / q.abs().mean(dim=1).detach()
        loss = -lam * q.mean(dim=1) + seed_mean((pi - batch.act).square())
        gradient_step(self.optimizers["actor"], loss)
        return {"actor/loss": loss.detach()}

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)
