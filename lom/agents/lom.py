"""LOM: weighted imitation Learning on One Mode.

1. Pre-train a Gaussian mixture π_β(a|s) on the dataset's actions, then freeze it.
2. Each step: update the critic; regress the mode value Q_mode(s, k) on Q(s, a_k), a_k drawn from component k;
   for each actor state pick k* = argmax_k Q_mode(s, k), draw a* from component k*, and imitate it with weight
   clip(exp(β·(Q(s, a*) − Q(s, π(s)))), 0, C).
"""

from __future__ import annotations

import dataclasses

import torch
from torch.nn import functional as F

from lom.agents.base import Agent, Losses, gradient_step
from lom.agents.critics import ExpectileCritic, SarsaCritic
from lom.batches import Batch, DeviceDataset
from lom.config import TrainConfig
from lom.errors import LOMError
from lom.networks import MODE_VALUE_NETS, DeterministicActor, GaussianMixture, gmm_log_prob, sample_components

# Rows per chunk when the frozen mixture is evaluated over the whole dataset.
BEHAVIOUR_CACHE_CHUNK = 65_536
# The cache holds means and stds for every row; beyond this size the mixture is evaluated per batch instead.
BEHAVIOUR_CACHE_MAX_BYTES = 4 * 2**30


def make_critic(cfg: TrainConfig, obs_dim: int, act_dim: int):
    hp = cfg.lom
    if cfg.critic == "expectile":
        return ExpectileCritic(obs_dim, act_dim, hp.num_critics, cfg.expectile, cfg.discount, cfg.tau, cfg.critic_lr)
    return SarsaCritic(obs_dim, act_dim, hp.num_critics, hp.smooth_noise, cfg.discount, cfg.tau, cfg.critic_lr)


class LOMAgent(Agent):
    name = "LOM"

    def __init__(self, obs_dim: int, act_dim: int, cfg: TrainConfig, cache_behaviour: bool = True):
        super().__init__()
        hp = cfg.lom
        self.cfg, self.hp = cfg, hp
        self.gmm = GaussianMixture(obs_dim, act_dim, hp.num_components)
        self.critic = make_critic(cfg, obs_dim, act_dim)
        self.mode_value = MODE_VALUE_NETS[cfg.mode_net](obs_dim, hp.num_components)
        self.actor = DeterministicActor(obs_dim, act_dim)
        self.optimizers = {
            "gmm": torch.optim.Adam(self.gmm.parameters(), lr=cfg.gmm_lr),
            "critic": self.critic.optimizer,
            "mode_value": torch.optim.Adam(self.mode_value.parameters(), lr=cfg.mode_lr),
            "actor": torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr),
        }
        self.pretrain_steps = cfg.gmm_steps
        self.cache_behaviour = cache_behaviour
        self._behaviour_cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def hyperparameters(self) -> dict:
        return {**dataclasses.asdict(self.hp), "critic": self.cfg.critic, "mode_net": self.cfg.mode_net,
                "expectile": self.cfg.expectile, "gmm_steps": self.cfg.gmm_steps}

    # -- phase 1: the behaviour mixture ------------------------------------------------------------------------
    def load_behaviour_model(self, state: dict) -> None:
        """Use a mixture trained elsewhere (`--gmm_path`, e.g. another run's gmm.pt) and skip pre-training."""
        try:
            self.gmm.load_state_dict(state["gmm"])
        except (KeyError, RuntimeError) as exc:
            raise LOMError(f"--gmm_path: not a behaviour mixture for this dataset and --num_components "
                           f"{self.hp.num_components} ({type(exc).__name__})") from None
        self.pretrain_steps = 0

    def pretrain_step(self, data: DeviceDataset) -> Losses:
        batch = data.sample(self.cfg.gmm_batch_size)
        nll = -gmm_log_prob(*self.gmm(batch.obs), batch.act).mean()
        gradient_step(self.optimizers["gmm"], nll)
        return {"gmm/nll": nll.detach()}

    def finish_pretraining(self, data: DeviceDataset) -> None:
        """Freeze the mixture; it is fixed from here on, so its output for every dataset row can be computed once."""
        self.gmm.requires_grad_(False)
        n, a = self.hp.num_components, data.act_dim
        cache_bytes = 2 * len(data) * n * a * 4
        if not self.cache_behaviour or cache_bytes > BEHAVIOUR_CACHE_MAX_BYTES:
            self._behaviour_cache = None
            return
        with torch.no_grad():
            parts = [self.gmm(chunk)[:2] for chunk in torch.split(data.obs, BEHAVIOUR_CACHE_CHUNK)]
        self._behaviour_cache = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))

    @torch.no_grad()
    def behaviour(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and stds (B, N, A) of every component at the batch's states."""
        if self._behaviour_cache is not None:
            means, stds = self._behaviour_cache
            return means[batch.idx], stds[batch.idx]
        return self.gmm(batch.obs)[:2]

    # -- phase 2: critic, mode value, actor ----------------------------------------------------------------------
    def train_step(self, data: DeviceDataset) -> Losses:
        cfg = self.cfg
        critic_batch, mode_batch, actor_batch = data.sample_many(
            (cfg.critic_batch_size, cfg.mode_batch_size, cfg.actor_batch_size)
        )
        losses = self.critic.update(critic_batch)
        losses.update(self.update_mode_value(mode_batch))
        losses.update(self.update_actor(actor_batch))
        return losses

    def update_mode_value(self, batch: Batch) -> Losses:
        means, stds = self.behaviour(batch)
        b, n, a = means.shape
        with torch.no_grad():
            actions = sample_components(means, stds, torch.randn_like(means))
            states = batch.obs.unsqueeze(1).expand(b, n, batch.obs.shape[1]).reshape(b * n, -1)
            target = self.critic.value(states, actions.reshape(b * n, a)).view(b, n)
        loss = F.mse_loss(self.mode_value(batch.obs), target)
        gradient_step(self.optimizers["mode_value"], loss)
        return {"mode_value/loss": loss.detach()}

    @torch.no_grad()
    def best_component(self, obs: torch.Tensor) -> torch.Tensor:
        """k*(s) = argmax_k Q_mode(s, k)."""
        return self.mode_value(obs).argmax(dim=-1)

    @torch.no_grad()
    def best_mode_action(self, batch: Batch) -> torch.Tensor:
        """a* ~ N(μ_k*(s), σ_k*(s)), clipped to the action box, plus optional exploration noise `ac_rand`."""
        means, stds = self.behaviour(batch)
        k = self.best_component(batch.obs)
        rows = torch.arange(len(k), device=k.device)
        a_star = sample_components(means[rows, k], stds[rows, k], torch.randn_like(means[:, 0]))
        if self.hp.ac_rand > 0:
            a_star = (a_star + self.hp.ac_rand * torch.randn_like(a_star)).clamp(-1.0, 1.0)
        return a_star

    def update_actor(self, batch: Batch) -> Losses:
        a_star = self.best_mode_action(batch)
        pi = self.actor(batch.obs)
        weight = imitation_weight(
            self.critic.value(batch.obs, a_star), self.critic.value(batch.obs, pi.detach()),
            self.hp.beta, self.hp.weight_clip,
        )
        loss = (weight * (pi - a_star).square().mean(dim=-1)).mean()
        gradient_step(self.optimizers["actor"], loss)
        return {"actor/loss": loss.detach(), "actor/weight": weight.mean()}

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)


def imitation_weight(q_target: torch.Tensor, q_policy: torch.Tensor, beta: float, clip: float) -> torch.Tensor:
    """ω = clip(exp(β·(Q(s, a*) − Q(s, π(s)))), 0, C); an overflow to +inf is clipped to C like any large value."""
    return torch.exp(beta * (q_target - q_policy)).clamp(max=clip)
