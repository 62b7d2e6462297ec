"""LOM: weighted imitation Learning on One Mode.

1. Pre-train a Gaussian mixture π_β(a|s) on the dataset's actions, then freeze it.
2. Each step: update the critic; regress the mode value Q_mode(s, k) on Q(s, a_k), a_k drawn from component k;
   for each actor state pick k* = argmax_k Q_mode(s, k), draw a* from component k*, and imitate it with weight
   ω = clip(exp(β·(Q(s, a*) − b(s))), 0, C), where b(s) is the critic's V(s) (`--weight_baseline value`) or the
   authors' Q(s, π(s)) (`--weight_baseline policy`); `--weight_rule` sets ω from the gap Q(s, a*) − b(s) in other,
   scale-free ways (lom/agents/weights.py).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from lom.agents.base import Agent, Losses, gradient_step
from lom.agents.critics import ExpectileCritic, SarsaCritic
from lom.config import TrainConfig
from lom.data.batches import Batch, DeviceDataset
from lom.errors import LOMError
from lom.networks import (CPU_BLOCK_ROWS, MODE_VALUE_NETS, CosineDecay, DeterministicActor, GaussianMixture,
                          Generators, adam, gmm_log_prob, sample_components)
from lom.agents.weights import make_weight_rule
from lom.seeds import seed_mean

# Rows per chunk when the frozen mixture is evaluated over the whole dataset on a GPU (on CPU: CPU_BLOCK_ROWS).
BEHAVIOUR_CACHE_CHUNK = 65_536
# The cache holds means and stds for every row; beyond this size the mixture is evaluated per batch instead.
BEHAVIOUR_CACHE_MAX_BYTES = 4 * 2**30
# An imitation weight below this teaches the actor next to nothing (logged as actor/weight_below_1e-3).
GATE_CLOSED_WEIGHT = 1e-3


def make_critic(cfg: TrainConfig, obs_dim: int, act_dim: int, capturable: bool = False, generators: Generators = None):
    hp = cfg.lom
    if cfg.critic == "expectile":
        return ExpectileCritic(obs_dim, act_dim, hp.num_critics, cfg.expectile, cfg.discount, cfg.tau, cfg.critic_lr,
                               hidden=cfg.hidden, capturable=capturable, generators=generators)
    return SarsaCritic(obs_dim, act_dim, hp.num_critics, hp.smooth_noise, cfg.discount, cfg.tau, cfg.critic_lr,
                       hidden=cfg.hidden, capturable=capturable, generators=generators)


class LOMAgent(Agent):
    """`capturable`: optimisers a CUDA graph can replay (lom/training/captured_steps.py). `seeds`: the stacked seeds
    (lom/seeds.py). Two speed-ups change no number (tests/plain_paths.py checks them against plain steps): the frozen
    mixture's output cached per dataset row, and batched kernels (fused Adam; Q of many actions per state)."""

    name = "LOM"

    def __init__(self, obs_dim: int, act_dim: int, cfg: TrainConfig, capturable: bool = False, seeds=None):
        super().__init__(seeds)
        hp, gens = cfg.lom, self.rng.init_generators
        self.cfg, self.hp = cfg, hp
        self.gmm = GaussianMixture(obs_dim, act_dim, hp.num_components, (cfg.gmm_hidden_width,) * 2, gens)
        self.critic = make_critic(cfg, obs_dim, act_dim, capturable=capturable, generators=gens)
        self.mode_value = MODE_VALUE_NETS[cfg.mode_net](obs_dim, hp.num_components, cfg.hidden, gens)
        self.actor = DeterministicActor(obs_dim, act_dim, cfg.hidden, gens)
        self.weight_rule = make_weight_rule(cfg, self.seed_count)  # a module: the rms rule's running state is saved
        # A module too, so that a resumed run continues its schedule where it stopped.
        self.actor_lr = CosineDecay(cfg.actor_lr, cfg.training_steps) if cfg.actor_lr_schedule == "cosine" else None
        self.optimizers = {
            # foreach, not fused, for the mixture: bit-identical to plain Adam, and pre-training is chaotic enough
            # (components merging or splitting) that a last-bit difference can change where it ends.
            "gmm": adam(self.gmm.parameters(), cfg.gmm_lr, "foreach", capturable),
            "critic": self.critic.optimizer,
            "mode_value": adam(self.mode_value.parameters(), cfg.mode_lr, "fused", capturable),
            "actor": adam(self.actor.parameters(), self.actor_lr.lr if self.actor_lr else cfg.actor_lr, "fused",
                          capturable),
        }
        self.pretrain_steps = cfg.gmm_steps
        # (S·rows, 2, N, A) and (S·rows, N): every dataset row's component means and stds, and log-weights, under
        # each seed's mixture once it is frozen (seed s's rows first at s·rows).
        self.behaviour_cache: torch.Tensor | None = None
        self.log_weight_cache: torch.Tensor | None = None
        self.cache_offsets: torch.Tensor | None = None

    def hyperparameters(self) -> dict:
        return {**dataclasses.asdict(self.hp), "critic": self.cfg.critic,
                "weight_baseline": self.cfg.weight_baseline, "mode_net": self.cfg.mode_net,
                "expectile": self.cfg.expectile, "gmm_steps": self.cfg.gmm_steps,
                "weight_rule": self.cfg.weight_rule, "rms_beta": self.cfg.rms_beta,
                "ess_fraction": self.cfg.ess_fraction, "actor_lr_schedule": self.cfg.actor_lr_schedule}

    # -- phase 1: the behaviour mixture ------------------------------------------------------------------------
    def load_behaviour_model(self, state: dict) -> None:
        """Use a mixture trained elsewhere (`--gmm_path`, e.g. another run's gmm.pt) and skip pre-training; one
        mixture is every stacked seed's."""
        try:
            gmm = {name: w.expand(self.seed_count, *w.shape[1:]) if w.dim() and len(w) == 1 else w
                   for name, w in state["gmm"].items()}
            self.gmm.load_state_dict(gmm)
        except (KeyError, RuntimeError) as exc:
            raise LOMError(f"--gmm_path: not a behaviour mixture for this dataset, --num_components "
                           f"{self.hp.num_components} and --gmm_hidden_width {self.cfg.gmm_hidden_width} "
                           f"({type(exc).__name__})") from None
        self.pretrain_steps = 0

    def pretrain_step(self, data: DeviceDataset) -> Losses:
        idx = data.draw(self.rng, self.cfg.gmm_batch_size)  # the mixture needs states and actions: two gathers of six
        nll = -seed_mean(gmm_log_prob(*self.gmm(data.rows(data.obs, idx)), data.rows(data.act, idx)))
        gradient_step(self.optimizers["gmm"], nll)
        return {"gmm/nll": nll.detach()}

    def finish_pretraining(self, data: DeviceDataset) -> None:
        """Freeze the mixture; it is fixed from here on, so its output for every dataset row can be computed once."""
        self.gmm.requires_grad_(False)
        n, a, seeds = self.hp.num_components, data.act_dim, self.seed_count
        cache_bytes = seeds * len(data) * n * (2 * a + 1) * 4  # means, stds and log-weights, float32
        if cache_bytes > BEHAVIOUR_CACHE_MAX_BYTES:
            self.behaviour_cache = self.log_weight_cache = None
            return
        chunk = CPU_BLOCK_ROWS if data.device.type == "cpu" else BEHAVIOUR_CACHE_CHUNK
        cache = torch.empty(seeds, len(data), 2, n, a, device=data.device)
        log_weights = torch.empty(seeds, len(data), n, device=data.device)
        with torch.no_grad():
            for rows, row_log_w, obs in zip(torch.split(cache, chunk, dim=1), torch.split(log_weights, chunk, dim=1),
                                            torch.split(data.obs, chunk)):
                means, stds, row_log_w[:] = self.gmm(obs.expand(seeds, *obs.shape))
                rows[:, :, 0], rows[:, :, 1] = means, stds
        self.behaviour_cache, self.log_weight_cache = cache.flatten(0, 1), log_weights.flatten(0, 1)
        # Seed s's rows start at s·len(data) in the flattened caches.
        self.cache_offsets = torch.arange(seeds, device=data.device).mul_(len(data)).unsqueeze(1)

    @torch.no_grad()
    def behaviour(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Means and stds (S, B, N, A) of every component at the batch's states, and their log-weights log w_k(s)
        (S, B, N): how much of the behaviour at each state each component describes."""
        if self.behaviour_cache is not None:
            rows = batch.idx + self.cache_offsets
            return (*DeviceDataset.rows(self.behaviour_cache, rows).unbind(2),
                    DeviceDataset.rows(self.log_weight_cache, rows))
        return self.gmm(batch.obs)

    def action_values(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The critic's value of M actions per state, (S, B, M, A) -> (S, B, M)."""
        return self.critic.action_values(obs, actions)

    # -- phase 2: critic, mode value, actor ----------------------------------------------------------------------
    def train_step(self, data: DeviceDataset) -> Losses:
        cfg = self.cfg
        critic_batch, mode_batch, actor_batch = data.sample_many(
            self.rng, (cfg.critic_batch_size, cfg.mode_batch_size, cfg.actor_batch_size)
        )
        losses = self.critic.update(critic_batch, self.rng)
        losses.update(self.update_mode_value(mode_batch))
        losses.update(self.update_actor(actor_batch))
        return losses

    def update_mode_value(self, batch: Batch) -> Losses:
        means, stds, _ = self.behaviour(batch)
        with torch.no_grad():
            target = self.action_values(batch.obs, sample_components(means, stds, self.rng.normal_like(means)))
        loss = seed_mean((self.mode_value(batch.obs) - target).square())
        gradient_step(self.optimizers["mode_value"], loss)
        return {"mode_value/loss": loss.detach()}

    @torch.no_grad()
    def best_component(self, obs: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
        """k*(s) = argmax_k Q_mode(s, k) over the components with weight w_k(s) >= min_component_weight.

        A component the mixture barely uses at s describes no behaviour there, so its mode value is an extrapolation
        to actions the data never shows; the threshold (0 = the paper's rule) keeps such components out.
        """
        return supported_argmax(self.mode_value(obs), log_weights, self.hp.min_component_weight)

    @torch.no_grad()
    def best_mode_action(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """a* ~ N(μ_k*(s), σ_k*(s)), clipped to the action box, plus optional exploration noise `ac_rand`; and
        whether k*(s) is also the component with the largest mixture weight at s."""
        means, stds, log_weights = self.behaviour(batch)
        k = self.best_component(batch.obs, log_weights)
        pick = k[..., None, None].expand(*k.shape, 1, means.shape[-1])  # (S, B, 1, A)
        a_star = sample_components(means.gather(2, pick).squeeze(2), stds.gather(2, pick).squeeze(2),
                                   self.rng.normal_like(means[:, :, 0]))
        if self.hp.ac_rand > 0:
            a_star = (a_star + self.hp.ac_rand * self.rng.normal_like(a_star)).clamp(-1.0, 1.0)
        return a_star, k == log_weights.argmax(dim=-1)

    @torch.no_grad()
    def weight_gap(self, obs: torch.Tensor, a_star: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        """Q(s, a*) − b(s), what the imitation weight exponentiates; b is V(s) or Q(s, π(s)) (`weight_baseline`)."""
        if self.cfg.weight_baseline == "value":
            return self.action_values(obs, a_star.unsqueeze(2))[..., 0] - self.critic.state_value(obs)
        q = self.action_values(obs, torch.stack([a_star, pi], dim=2))
        return q[..., 0] - q[..., 1]

    def update_actor(self, batch: Batch) -> Losses:
        a_star, picks_heaviest = self.best_mode_action(batch)
        pi = self.actor(batch.obs)
        gap = self.weight_gap(batch.obs, a_star, pi.detach())
        weight = self.weight_rule(gap)
        loss = seed_mean(weight * (pi - a_star).square().mean(dim=-1))
        gradient_step(self.optimizers["actor"], loss)
        if self.actor_lr is not None:
            self.actor_lr.advance()
        return {
            "actor/loss": loss.detach(),
            "actor/weight": seed_mean(weight),
            # How open the imitation gate is: a gap far below 0 leaves almost every weight near 0.
            "actor/q_gap": seed_mean(gap),
            "actor/weight_below_1e-3": seed_mean((weight < GATE_CLOSED_WEIGHT).float()),
            "actor/weight_at_clip": seed_mean((weight >= self.hp.weight_clip).float()),
            "actor/picks_heaviest": seed_mean(picks_heaviest.float()),
        }

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)


def supported_argmax(values: torch.Tensor, log_weights: torch.Tensor, min_weight: float) -> torch.Tensor:
    """argmax_k values[..., k] over the components with weight >= min_weight; the heaviest always counts, so the
    choice is never empty."""
    if min_weight > 0:
        supported = log_weights >= math.log(min_weight)
        supported |= log_weights == log_weights.max(dim=-1, keepdim=True).values
        values = values.masked_fill(~supported, -torch.inf)
    return values.argmax(dim=-1)

