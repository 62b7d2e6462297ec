"""MDN: a mixture-density policy, LOM without the value-based choice of a mode (the paper's "MDN" column).

The Gaussian mixture π_β(a|s) = Σ_k w_k(s) N(a; μ_k(s), σ_k(s)) that LOM pre-trains, fit the same way (maximum
likelihood on every dataset action), acts with the mean of its heaviest component, μ_{k(s)}(s) with
k(s) = argmax_k w_k(s). Where the data's most common behaviour is not its best, this picks the common one; LOM picks
k*(s) = argmax_k Q_mode(s, k) instead, which is what the comparison measures. It trains for `--training_steps` with
LOM's mixture settings (`--num_components`, `--gmm_hidden_width`, `--gmm_lr`, `--gmm_batch_size`).
"""

from __future__ import annotations

import torch
from torch import nn

from lom.agents.base import Agent, Losses, gradient_step
from lom.config import TrainConfig
from lom.data.batches import DeviceDataset
from lom.networks import GaussianMixture, OneSeed, adam, gmm_log_prob
from lom.seeds import SeedStreams, seed_mean


def heaviest_mean(means: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """μ_{k(s)}(s), k(s) = argmax_k w_k(s): means (..., N, A) and log-weights (..., N) -> (..., A)."""
    k = log_weights.argmax(dim=-1, keepdim=True)  # (..., 1)
    return means.gather(-2, k.unsqueeze(-1).expand(*k.shape, means.shape[-1])).squeeze(-2)


def mixture_nll_step(gmm: GaussianMixture, optimizer: torch.optim.Optimizer, data: DeviceDataset, rng: SeedStreams,
                     batch_size: int) -> Losses:
    """One maximum-likelihood step of the mixture on a batch of dataset states and actions."""
    idx = data.draw(rng, batch_size)  # the mixture needs states and actions: two gathers of six
    nll = -seed_mean(gmm_log_prob(*gmm(data.rows(data.obs, idx)), data.rows(data.act, idx)))
    gradient_step(optimizer, nll)
    return {"gmm/nll": nll.detach()}


class HeaviestComponent(nn.Module):
    """The mixture's deterministic policy as a network of its own (what lom.export writes): states -> μ_{k(s)}(s)."""

    def __init__(self, gmm: GaussianMixture):
        super().__init__()
        self.gmm = gmm

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        means, _, log_weights = self.gmm(obs)
        return heaviest_mean(means, log_weights)


class MDNAgent(Agent):
    name = "MDN"

    def __init__(self, obs_dim: int, act_dim: int, cfg: TrainConfig, capturable: bool = False, seeds=None):
        super().__init__(seeds)
        self.cfg = cfg
        self.gmm = GaussianMixture(obs_dim, act_dim, cfg.num_components, (cfg.gmm_hidden_width,) * 2,
                                   self.rng.init_generators)
        # foreach, as LOM's mixture: the same optimiser, so the two fit alike.
        self.optimizers = {"gmm": adam(self.gmm.parameters(), cfg.gmm_lr, "foreach", capturable)}

    def train_step(self, data: DeviceDataset) -> Losses:
        return mixture_nll_step(self.gmm, self.optimizers["gmm"], data, self.rng, self.cfg.gmm_batch_size)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        means, _, log_weights = self.gmm(obs)
        return heaviest_mean(means, log_weights)

    def policy_network(self) -> nn.Module:
        return OneSeed(HeaviestComponent(self.gmm))

    def hyperparameters(self) -> dict:
        cfg = self.cfg
        return {"num_components": cfg.num_components, "gmm_hidden_width": cfg.gmm_hidden_width, "gmm_lr": cfg.gmm_lr,
                "gmm_batch_size": cfg.gmm_batch_size}
