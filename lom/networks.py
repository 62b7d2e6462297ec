"""Network building blocks: plain MLPs, batched ensembles, the Gaussian-mixture behaviour model, policies."""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

# The mixture's means stay strictly inside (-1, 1) and its log-stds inside [-15, 0] (the paper's ranges): a mean of
# exactly ±1 or a std near zero makes the log-likelihood of boundary actions explode.
GMM_MEAN_LIMIT = 0.9999
GMM_LOG_STD_MIN, GMM_LOG_STD_MAX = -15.0, 0.0
GAUSSIAN_LOG_STD_MIN, GAUSSIAN_LOG_STD_MAX = -5.0, 2.0
HALF_LOG_SQRT_2PI = math.log(math.sqrt(2.0 * math.pi))
# On CPU, Q is evaluated over many (state, action) rows in blocks of about this many rows: a block's 256-wide
# activations then stay in the L2 cache. For LOM's 10,240 mode-value rows that measured 2x faster than one pass.
CPU_BLOCK_ROWS = 1024


# One generator per stacked seed (lom/seeds.py) that a network's initial weights are drawn from, or None: one seed,
# drawn from torch's global generator.
Generators = Sequence[torch.Generator] | None


def seed_count(generators: Generators) -> int:
    return 1 if generators is None else len(generators)


def uniform_per_seed_(tensor: torch.Tensor, bound: float, generators: Generators) -> None:
    """U(−bound, bound), slice s of the leading (seed) axis drawn from generator s."""
    with torch.no_grad():
        if generators is None:
            tensor.uniform_(-bound, bound)
            return
        for part, generator in zip(tensor, generators):
            part.uniform_(-bound, bound, generator=generator)


class EnsembleLinear(nn.Module):
    """Independent linear layers, one per index of the leading axes `lead` (seeds, or seeds × ensemble members),
    applied in one batched matmul: x (*lead, rows..., in) -> (*lead, rows..., out)."""

    def __init__(self, lead: Sequence[int], in_dim: int, out_dim: int, generators: Generators = None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(*lead, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(*lead, 1, out_dim))
        # nn.Linear's initialisation, layer by layer, each seed's from its own generator.
        bound = 1.0 / math.sqrt(in_dim)
        uniform_per_seed_(self.weight, bound, generators)
        uniform_per_seed_(self.bias, bound, generators)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_dim, out_dim = self.weight.shape[-2:]
        weight, bias = self.weight.reshape(-1, in_dim, out_dim), self.bias.reshape(-1, 1, out_dim)
        out = torch.baddbmm(bias, x.reshape(weight.shape[0], -1, in_dim), weight)  # shape, not len(): traces cleanly
        return out.view(*x.shape[:-1], out_dim)


class EnsembleMLP(nn.Module):
    """MLPs with ReLUs between `EnsembleLinear` layers: one network per index of `lead`, evaluated at once."""

    def __init__(self, lead: Sequence[int], in_dim: int, hidden: Sequence[int], out_dim: int,
                 generators: Generators = None):
        super().__init__()
        dims = [in_dim, *hidden, out_dim]
        self.layers = nn.ModuleList(EnsembleLinear(lead, a, b, generators) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden_to_output(self.layers[0](x))

    def hidden_to_output(self, h: torch.Tensor) -> torch.Tensor:
        """The rest of the network from the first layer's pre-activation (*lead, rows..., hidden[0])."""
        for layer in itertools.islice(self.layers, 1, None):
            # In place is safe after a linear layer, whose backward pass does not need its output.
            h = layer(F.relu(h, inplace=True))
        return h


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, generators: Generators = None) -> EnsembleMLP:
    """One MLP per seed: (S, rows..., in) -> (S, rows..., out)."""
    return EnsembleMLP((seed_count(generators),), in_dim, hidden, out_dim, generators)


class QEnsemble(nn.Module):
    """K state-action values Q_k(s, a) per seed, returned as (S, K, B)."""

    def __init__(self, obs_dim: int, act_dim: int, members: int, hidden: Sequence[int] = (256, 256),
                 generators: Generators = None):
        super().__init__()
        self.members = members
        self.net = EnsembleMLP((seed_count(generators), members), obs_dim + act_dim, hidden, 1, generators)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, act], dim=-1).unsqueeze(1)
        return self.net(x.expand(x.shape[0], self.members, *x.shape[2:])).squeeze(-1)

    @torch.no_grad()
    def over_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q_k(s_b, a_bm) for M actions per state, obs (S, B, O) and actions (S, B, M, A) -> (S, K, B, M): equal to
        `forward` on every (s_b, a_bm) row, but the first layer's state part is computed once per state, and on CPU
        in cache-sized blocks of states."""
        b, m = actions.shape[1:3]
        first = self.net.layers[0]
        obs_dim = obs.shape[-1]
        w_obs, w_act = first.weight[:, :, :obs_dim], first.weight[:, :, obs_dim:]  # (S, K, O or A, H)
        states_per_block = max(1, CPU_BLOCK_ROWS // m) if obs.device.type == "cpu" else b
        blocks = []
        for s, a in zip(torch.split(obs, states_per_block, dim=1), torch.split(actions, states_per_block, dim=1)):
            rows = s.shape[1]
            from_state = torch.matmul(s.unsqueeze(1), w_obs).add_(first.bias)  # (S, K, b', H)
            from_action = torch.matmul(a.reshape(len(a), 1, rows * m, -1), w_act)  # (S, K, b'·M, H)
            h = from_action.view(*from_action.shape[:2], rows, m, -1).add_(from_state.unsqueeze(3))
            blocks.append(self.net.hidden_to_output(h).squeeze(-1))
        return torch.cat(blocks, dim=2)


class OneSeed(nn.Module):
    """A one-seed network as a plain one: (B, ...) -> (B, ...), the seed axis added and removed around it."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(0)).squeeze(0)


class GaussianMixture(nn.Module):
    """State-conditioned mixture of N diagonal Gaussians over actions (a mixture-density network).

    forward(obs (S, B, O)) -> (means (S, B, N, A), stds (S, B, N, A), log_weights (S, B, N)).
    """

    def __init__(self, obs_dim: int, act_dim: int, components: int, hidden: Sequence[int] = (512, 512),
                 generators: Generators = None):
        super().__init__()
        self.act_dim, self.components = act_dim, components
        self.net = mlp(obs_dim, hidden, self.outputs(components, act_dim), generators)

    @staticmethod
    def outputs(components: int, act_dim: int) -> int:
        """Numbers per state: each component's mean and log-std per action dimension, and its logit."""
        return components * (2 * act_dim + 1)

    @staticmethod
    def sizes(state: dict[str, torch.Tensor]) -> tuple[int, int, int]:
        """(observation size, hidden width, outputs per state) of a saved mixture, read from its first and last
        layers."""
        weights = [w for name, w in state.items() if name.endswith("weight")]  # (S, in, out)
        return weights[0].shape[-2], weights[0].shape[-1], weights[-1].shape[-1]

    def forward(self, obs: torch.Tensor):
        out = self.net(obs)
        n, a, rows = self.components, self.act_dim, out.shape[:-1]
        means = torch.tanh(out[..., : n * a]).clamp(-GMM_MEAN_LIMIT, GMM_MEAN_LIMIT).view(*rows, n, a)
        log_stds = out[..., n * a : 2 * n * a].clamp(GMM_LOG_STD_MIN, GMM_LOG_STD_MAX).view(*rows, n, a)
        log_weights = F.log_softmax(out[..., 2 * n * a :], dim=-1)
        return means, log_stds.exp(), log_weights


def gmm_log_prob(means, stds, log_weights, actions) -> torch.Tensor:
    """log π_β(a|s) = logsumexp_k(log w_k + Σ_a log N(a; μ_k, σ_k)): means (..., N, A), actions (..., A) -> (...)."""
    # Normal.log_prob's own formula (same rounding), without torch.distributions' per-call argument checks.
    var = stds.square()
    component_log_probs = -(actions.unsqueeze(-2) - means).square() / (2 * var) - stds.log() - HALF_LOG_SQRT_2PI
    return torch.logsumexp(log_weights + component_log_probs.sum(-1), dim=-1)


def sample_components(means, stds, noise: torch.Tensor) -> torch.Tensor:
    """Reparameterised draw μ + σ·ε from every component (or the chosen ones), clipped to the action box."""
    return (means + stds * noise).clamp(-1.0, 1.0)


class DeterministicActor(nn.Module):
    """π(s) = tanh(MLP(s)): the policy LOM and TD3+BC train and evaluate, (S, B, O) -> (S, B, A)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), generators: Generators = None):
        super().__init__()
        self.net = mlp(obs_dim, hidden, act_dim, generators)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))


class GaussianActor(nn.Module):
    """N(tanh(MLP(s)), diag σ) with a state-independent learned log σ, as in IQL; the mean is the evaluation action."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), generators: Generators = None):
        super().__init__()
        self.net = mlp(obs_dim, hidden, act_dim, generators)
        self.log_std = nn.Parameter(torch.zeros(seed_count(generators), 1, act_dim))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        std = self.log_std.clamp(GAUSSIAN_LOG_STD_MIN, GAUSSIAN_LOG_STD_MAX).exp()
        # validate_args=False: the checks read tensors back to the host (a sync, and illegal in a captured step).
        return torch.distributions.Normal(self(obs), std, validate_args=False).log_prob(actions).sum(-1)


def adam(params, lr: float, kernel: str = "fused", capturable: bool = False) -> torch.optim.Adam:
    """Adam whose update runs as PyTorch's per-parameter `loop` (its CPU default, ~6 calls per parameter), as a few
    multi-tensor `foreach` calls (bit-identical to the loop), or as one `fused` kernel per parameter (the fastest;
    it rounds differently in the last bit). On 2 busy CPU cores the loop measured 3-100x slower than either.
    `capturable`: the step count lives on the device, so that a CUDA graph can replay the update
    (lom/training/captured_steps.py)."""
    return torch.optim.Adam(params, lr=lr, foreach=kernel == "foreach", fused=kernel == "fused", capturable=capturable)


class CosineDecay(nn.Module):
    """A learning rate that falls from lr₀ to 0 over `total` steps, lr_t = lr₀·(1 + cos(π·t/T))/2 (the closed form
    of torch's CosineAnnealingLR), kept and advanced on the device so that a captured step advances it too. Both
    numbers are parameters without gradients: `.to(device)` keeps a parameter's identity, so the optimiser built
    on `lr` before the move reads the moved value."""

    def __init__(self, lr: float, total: int):
        super().__init__()
        self.initial, self.total = lr, total
        self.lr = nn.Parameter(torch.tensor(lr), requires_grad=False)
        self.t = nn.Parameter(torch.tensor(0.0), requires_grad=False)

    @torch.no_grad()
    def advance(self) -> None:
        self.t.add_(1.0)
        self.lr.copy_(self.t.mul(math.pi / self.total).cos_().add_(1.0).mul_(0.5 * self.initial))


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target ← (1 − τ)·target + τ·online, in one fused call over all parameters."""
    torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)


class MultiHeadModeValue(nn.Module):
    """Q_mode(s) ∈ R^N: one output per mixture component, so each state's trunk is computed once; (S, B, N)."""

    def __init__(self, obs_dim: int, components: int, hidden: Sequence[int] = (256, 256),
                 generators: Generators = None):
        super().__init__()
        self.net = mlp(obs_dim, hidden, components, generators)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


class OneHotModeValue(nn.Module):
    """The authors' form: Q_mode(s, k) = MLP([s, one-hot(k)]), evaluated for every k, returned as (S, B, N)."""

    def __init__(self, obs_dim: int, components: int, hidden: Sequence[int] = (256, 256),
                 generators: Generators = None):
        super().__init__()
        self.components = components
        self.net = mlp(obs_dim + components, hidden, 1, generators)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # The first layer applied to [s, one-hot(k)] is W_s·s + b plus column k of W_onehot: the state part is
        # computed once per state instead of once per (state, component) row. Same network, same parameters.
        first = self.net.layers[0]
        obs_dim = obs.shape[-1]
        from_state = torch.baddbmm(first.bias, obs, first.weight[:, :obs_dim])  # (S, B, H)
        h = from_state.unsqueeze(2) + first.weight[:, obs_dim:].unsqueeze(1)  # (S, B, N, H)
        return self.net.hidden_to_output(h).squeeze(-1)


MODE_VALUE_NETS = {"multihead": MultiHeadModeValue, "onehot": OneHotModeValue}
