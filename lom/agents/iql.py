"""IQL (Kostrikov et al., ICLR 2022): expectile critic + advantage-weighted regression on the dataset's actions.

Its actor imitates ALL dataset actions, each weighted by exp(β·A): the weighted imitation over every mode that LOM
sets out to beat.
"""

from __future__ import annotations

import torch

from lom.agents.base import Agent, Losses, gradient_step
from lom.agents.critics import ExpectileCritic
from lom.agents.configs import IQLConfig
from lom.config import TrainConfig
from lom.data.batches import Batch, DeviceDataset
from lom.networks import CosineDecay, GaussianActor, adam
from lom.seeds import seed_mean


class IQLAgent(Agent):
    name = "IQL"

    def __init__(self, obs_dim: int, act_dim: int, cfg: TrainConfig, hp: IQLConfig = IQLConfig(),
                 capturable: bool = False, seeds=None):
        super().__init__(seeds)
        self.hp, gens = hp, self.rng.init_generators
        self.critic = ExpectileCritic(obs_dim, act_dim, hp.num_critics, hp.expectile, cfg.discount, cfg.tau, hp.lr,
                                      hidden=cfg.hidden, capturable=capturable, generators=gens)
        self.actor = GaussianActor(obs_dim, act_dim, cfg.hidden, gens)
        # The actor's learning rate follows a cosine decay over the run, as in IQL's paper.
        self.actor_lr = CosineDecay(hp.lr, cfg.training_steps)
        # Fused: the Adam kernel that reads a tensor learning rate on the device without a host sync, captured or not.
        actor_opt = adam(self.actor.parameters(), self.actor_lr.lr, "fused", capturable)
        self.optimizers = {"critic": self.critic.optimizer, "actor": actor_opt}

    def train_step(self, data: DeviceDataset) -> Losses:
        critic_batch, actor_batch = data.sample_many(self.rng, (self.hp.batch_size, self.hp.batch_size))
        losses = self.critic.update(critic_batch, self.rng)
        losses.update(self.update_actor(actor_batch))
        return losses

    def update_actor(self, batch: Batch) -> Losses:
        with torch.no_grad():
            advantage = self.critic.value(batch.obs, batch.act) - self.critic.state_value(batch.obs)
            weight = torch.exp(self.hp.beta * advantage).clamp(max=self.hp.weight_clip)
        loss = -seed_mean(weight * self.actor.log_prob(batch.obs, batch.act))
        gradient_step(self.optimizers["actor"], loss)
        self.actor_lr.advance()
        return {"actor/loss": loss.detach(), "actor/weight": seed_mean(weight)}

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)
