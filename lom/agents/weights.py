"""LOM's imitation weight ω(s) from the gap g(s) = Q(s, a*) − b(s) (`--weight_rule`).

Every rule maps a batch of gaps (S, B), seed axis first, to weights (S, B) with no gradient, computed on the device
with a fixed amount of work and no host sync (a training step may be captured as a CUDA graph,
lom/training/captured_steps.py).
C (`--weight_clip`) caps every rule's weights.

- fixed: ω = min(exp(β·g), C), the paper's rule. β is in units of 1 / reward: multiplying the rewards by 100
  multiplies g by 100 and changes every weight.
- rms:   ω = min(exp(β_rms · g / c), C), c² a running mean of g² over the batches seen (MARWIL's normalisation):
         c_t² = c_{t−1}² + ρ_t·(mean_B g_t² − c_{t−1}²), ρ_t = max(1/t, 1/H); an exact mean over the first H batches,
         then an exponential average over about H batches, so that c follows the critic's scale as it learns. c has
         the units of g, so g / c, hence ω, does not change when rewards are scaled.
- ess:   ω = min(n · softmax_B(λ·g), C) (mean weight 1 before the cap), λ chosen per batch and seed so that the
         weights' effective sample size ESS / n = (Σω)² / (n·Σω²) is the target fraction f: f = 1 is uniform
         weights, f → 1/n all weight on the best action. λ·g = u·z with z = (g − mean g) / std g: the solver looks
         for u on z, so λ scales as 1 / (the gaps' scale) and ω is scale-free.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lom.config import WEIGHT_RULES, TrainConfig
from lom.errors import LOMError

# rms: batches after which the running mean of g² turns from an exact mean into an exponential one (H above).
RMS_HORIZON = 1_000
# ess: u (λ times the gaps' standard deviation) is searched by bisection on log u in [U_MIN, U_MAX], a fixed number
# of halvings: 2^-32 of the bracket's log-width is far below float32's resolution. ESS/n falls monotonically in u.
ESS_U_MIN, ESS_U_MAX = 1e-4, 1e4
ESS_BISECTION_STEPS = 32
# A spread of exactly zero (every gap equal) divides zero by this instead: all weights come out equal.
TINY = torch.finfo(torch.float32).tiny


@torch.no_grad()
def imitation_weight(gap: torch.Tensor, beta: float, clip: float) -> torch.Tensor:
    """fixed: ω = clip(exp(β·gap), 0, C); an overflow to +inf is clipped to C like any large value."""
    return torch.exp(beta * gap).clamp(max=clip)


class FixedWeight(nn.Module):
    """ω = min(exp(β·g), C) (no state)."""

    def __init__(self, beta: float, clip: float):
        super().__init__()
        self.beta, self.clip = beta, clip

    def forward(self, gap: torch.Tensor) -> torch.Tensor:
        return imitation_weight(gap, self.beta, self.clip)


class RunningRMSWeight(nn.Module):
    """ω = min(exp(β_rms · g / c), C) with c² the running mean of g² (module docstring). Each call takes one batch
    into the mean first, then weighs that batch. State (saved with the agent's state_dict): `mean_square` (S,), one
    per seed, and `batches`, a 0-d count all stacked seeds share (they step together)."""

    def __init__(self, seeds: int, beta: float, clip: float, horizon: int = RMS_HORIZON):
        super().__init__()
        self.beta, self.clip, self.min_rate = beta, clip, 1.0 / horizon
        self.register_buffer("mean_square", torch.zeros(seeds))
        # float32 counts exactly to 2^24 batches; from H on the rate no longer depends on it.
        self.register_buffer("batches", torch.zeros(()))

    @torch.no_grad()
    def forward(self, gap: torch.Tensor) -> torch.Tensor:
        self.batches.add_(1.0)
        rate = self.batches.reciprocal().clamp(min=self.min_rate)
        self.mean_square.lerp_(gap.square().mean(dim=-1), rate)
        scale = self.mean_square.sqrt().clamp(min=TINY).unsqueeze(-1)
        return torch.exp(self.beta * gap / scale).clamp(max=self.clip)


def ess_fraction_of(logits: torch.Tensor) -> torch.Tensor:
    """ESS / n of weights ∝ exp(logits) over the last axis: (Σw)² / (n·Σw²) = exp(2·lse(x) − lse(2x) − log n)."""
    n = logits.shape[-1]
    return torch.exp(2 * torch.logsumexp(logits, -1) - torch.logsumexp(2 * logits, -1) - math.log(n))


@torch.no_grad()
def ess_weights(gap: torch.Tensor, fraction: float, clip: float, steps: int = ESS_BISECTION_STEPS) -> torch.Tensor:
    """ω = min(n · softmax(u·z), C), z the batch's standardised gaps, u such that ESS/n of the weights is `fraction`
    (bisection on log u, `steps` halvings; a fraction out of reach ends at the bracket's edge)."""
    mean, std = gap.mean(dim=-1, keepdim=True), gap.std(dim=-1, correction=0, keepdim=True)
    z = (gap - mean) / std.clamp(min=TINY)
    lo = torch.full_like(mean, math.log(ESS_U_MIN))
    hi = torch.full_like(mean, math.log(ESS_U_MAX))
    for _ in range(steps):
        mid = (lo + hi) / 2
        too_even = (ess_fraction_of(mid.exp() * z) > fraction).unsqueeze(-1)  # the weights may sharpen further
        lo, hi = torch.where(too_even, mid, lo), torch.where(too_even, hi, mid)
    u = ((lo + hi) / 2).exp()
    return (gap.shape[-1] * torch.softmax(u * z, dim=-1)).clamp(max=clip)


class EffectiveSampleSizeWeight(nn.Module):
    """ω = min(n · softmax(λ·g), C) with λ set per batch by the ESS target (module docstring; no state)."""

    def __init__(self, fraction: float, clip: float):
        super().__init__()
        self.fraction, self.clip = fraction, clip

    def forward(self, gap: torch.Tensor) -> torch.Tensor:
        return ess_weights(gap, self.fraction, self.clip)


def make_weight_rule(cfg: TrainConfig, seeds: int) -> nn.Module:
    """The module `--weight_rule` names, with its one number (β, --rms_beta or --ess_fraction) and the cap C."""
    clip = cfg.weight_clip
    if cfg.weight_rule == "fixed":
        return FixedWeight(cfg.beta, clip)
    if cfg.weight_rule == "rms":
        return RunningRMSWeight(seeds, cfg.rms_beta, clip)
    if cfg.weight_rule == "ess":
        return EffectiveSampleSizeWeight(cfg.ess_fraction, clip)
    raise LOMError(f"--weight_rule {cfg.weight_rule!r} is unknown: choose one of {', '.join(WEIGHT_RULES)}")
