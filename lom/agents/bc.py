"""Behaviour cloning: a Gaussian policy fit by maximum likelihood to every action in the dataset."""

from __future__ import annotations

import torch

from lom.agents.base import Agent, Losses, gradient_step
from lom.agents.configs import BCConfig
from lom.config import TrainConfig
from lom.data.batches import DeviceDataset
from lom.networks import GaussianActor
from lom.seeds import seed_mean


class BCAgent(Agent):
    name = "BC"

    def __init__(self, obs_dim: int, act_dim: int, cfg: TrainConfig, hp: BCConfig = BCConfig(),
                 capturable: bool = False, seeds=None):
        super().__init__(seeds)
        self.hp = hp
        self.actor = GaussianActor(obs_dim, act_dim, cfg.hidden, self.rng.init_generators)
        self.optimizers = {"actor": torch.optim.Adam(self.actor.parameters(), lr=hp.lr, capturable=capturable)}

    def train_step(self, data: DeviceDataset) -> Losses:
        batch = data.sample(self.rng, self.hp.batch_size)
        nll = -seed_mean(self.actor.log_prob(batch.obs, batch.act))
        gradient_step(self.optimizers["actor"], nll)
        return {"actor/nll": nll.detach()}

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)
