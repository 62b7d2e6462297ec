"""Every agent's update computed by hand on tiny networks and a fixed batch: the loss the formula gives, its
gradient, the parameters after the optimizer's step, and the target networks after theirs.

The reference side never calls the code under test: it reads the parameters, runs its own forward passes
(plain tensor algebra), takes gradients with autograd and applies Adam's first step, p − lr·g / (|g| + ε) (after
one step Adam's bias-corrected moments are g and g²). Noise is the global generator's next draws after a
`torch.manual_seed`, in the order the method needs it.

Every network, batch and loss has the seed axis first (lom/seeds.py); the agents here are built without `seeds=`,
so S = 1, and the reference side keeps that axis throughout: batches (S, B, ...), layer weights (S, in, out) and
biases (S, 1, out) (a Q ensemble's (S, K, in, out) and (S, K, 1, out)), each loss one seed's own mean, (S,), its
gradient that of the sum over seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lom.agents.bc import BCAgent
from lom.agents.configs import BCConfig, IQLConfig, TD3BCConfig
from lom.agents.critics import ExpectileCritic, SarsaCritic
from lom.agents.iql import IQLAgent
from lom.agents.lom import LOMAgent
from lom.agents.td3bc import TD3BCAgent
from lom.data.batches import DeviceDataset, ObservationNormalizer
from lom.data.types import Transitions
from lom.seeds import SeedStreams
from explicit_config import explicit_config

OBS, ACT, ROWS, HIDDEN = 3, 2, 6, (8, 8)
GAMMA, TAU, LR = 0.9, 0.2, 1e-3  # τ ≠ 0.5, so a Polyak step taken the wrong way round shows
DONE = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]


# -- the reference side -----------------------------------------------------------------------------------------
def leaves(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of a module's parameters that autograd can differentiate the reference loss by."""
    return {name: p.detach().clone().requires_grad_() for name, p in module.named_parameters()}


def frozen(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def dense(p: dict, x: torch.Tensor, prefix: str = "") -> torch.Tensor:
    """One MLP per seed, layers <prefix>layers.0, <prefix>layers.1, ... (weight (S, in, out), bias (S, 1, out)) with
    ReLU between them: x (S, B, in) -> (S, B, out)."""
    i = 0
    while f"{prefix}layers.{i}.weight" in p:
        x = x.clamp(min=0) if i else x
        x = x @ p[f"{prefix}layers.{i}.weight"] + p[f"{prefix}layers.{i}.bias"]
        i += 1
    return x


def q_members(p: dict, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """Q_k(s, a) of every member of a QEnsemble's parameters (weights (S, K, in, out), biases (S, K, 1, out)) at
    obs (S, B, O), act (S, B, A): shape (S, K, B)."""
    x, i = torch.cat([obs, act], -1).unsqueeze(1), 0  # (S, 1, B, in): the same rows for every member
    while f"net.layers.{i}.weight" in p:
        x = x.clamp(min=0) if i else x
        x = x @ p[f"net.layers.{i}.weight"] + p[f"net.layers.{i}.bias"]
        i += 1
    return x[..., 0]


def gaussian_log_prob(mean, log_std, act) -> torch.Tensor:
    std = log_std.clamp(-5.0, 2.0).exp()
    return (-(act - mean) ** 2 / (2 * std**2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)


def mixture(p: dict, obs: torch.Tensor, n: int):
    """Means (S, B, N, A) = tanh(out), clamped to ±0.9999; stds = exp(log-std clamped to [−15, 0]); log-weights
    (S, B, N) = log softmax(logits). The output row holds the N·A means, then the N·A log-stds, then the N logits."""
    out = dense(p, obs, "net.")
    rows = out.shape[:-1]
    means = out[..., : n * ACT].tanh().clamp(-0.9999, 0.9999).reshape(*rows, n, ACT)
    stds = out[..., n * ACT: 2 * n * ACT].clamp(-15.0, 0.0).exp().reshape(*rows, n, ACT)
    return means, stds, torch.log_softmax(out[..., 2 * n * ACT:], -1)


def adam_step(p: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
    return p.detach() - lr * grad / (grad.abs() + 1e-8)


def assert_stepped(module: torch.nn.Module, reference: dict, lr: float):
    """The module's gradients are the reference's and its parameters took Adam's first step along them."""
    params = dict(module.named_parameters())
    for name in reference:
        torch.testing.assert_close(params[name].grad, reference[name].grad, rtol=1e-4, atol=1e-7, msg=name)
        torch.testing.assert_close(params[name].detach(), adam_step(reference[name], reference[name].grad, lr),
                                   rtol=0, atol=1e-6, msg=name)


def assert_unchanged(module: torch.nn.Module, before: dict):
    for name, p in module.named_parameters():
        assert torch.equal(p.detach(), before[name]), name


def assert_polyak(target: torch.nn.Module, target_before: dict, online: torch.nn.Module):
    """target = (1 − τ)·target_before + τ·online, parameter by parameter."""
    online_now = dict(online.named_parameters())
    for name, p in target.named_parameters():
        torch.testing.assert_close(p, (1 - TAU) * target_before[name] + TAU * online_now[name].detach(),
                                   rtol=1e-6, atol=1e-7, msg=name)


# -- the fixed batch --------------------------------------------------------------------------------------------
def dataset() -> DeviceDataset:
    """Six rows; next actions differ from the actions, two of them at the box's edge, two rows are terminal."""
    rng = np.random.default_rng(0)
    f32 = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
    next_act = rng.uniform(-0.9, 0.9, (ROWS, ACT))
    next_act[:2] = [[0.95, -0.97], [-0.99, 0.9]]
    t = Transitions(observations=f32(rng.standard_normal((ROWS, OBS))),
                    actions=f32(rng.uniform(-0.9, 0.9, (ROWS, ACT))), rewards=f32(rng.standard_normal(ROWS)),
                    next_observations=f32(rng.standard_normal((ROWS, OBS))), next_actions=f32(next_act),
                    terminals=f32(DONE))
    return DeviceDataset(t, ObservationNormalizer.fit(t.observations, False), torch.device("cpu"))


def whole_batch(data: DeviceDataset):
    """All six rows as the one seed's batch: fields (1, ROWS, ...)."""
    return data.gather(torch.arange(ROWS)[None])


@torch.no_grad()
def shift(module: torch.nn.Module, scale: float = 0.3, seed: int = 99):
    """Move a target network away from its online copy, so that using one for the other shows."""
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(scale * torch.randn(p.shape, generator=g))


@torch.no_grad()
def centre_value_on(v_last: torch.nn.Module, v_now: torch.Tensor, q: torch.Tensor):
    """Shift V's output bias (S, 1, 1) so that each seed's residuals q − V(s) (S, B) have median 0: they take both
    signs."""
    v_last.bias.add_((q - v_now).median(dim=-1, keepdim=True).values[..., None])


def config(agent: str = "LOM", **overrides):
    return explicit_config(agent=agent, discount=GAMMA, tau=TAU, critic_lr=LR, mode_lr=LR, actor_lr=LR, gmm_lr=LR,
                           training_steps=10, **overrides)


# -- the critics ------------------------------------------------------------------------------------------------
def test_expectile_critic_fits_v_to_the_upper_expectile_of_the_target_q_and_q_to_r_plus_discounted_v_next():
    """V(s) ← expectile τ of min_k Q̄_k(s, a): residuals u = Q̄ − V > 0 weigh τ, u < 0 weigh 1 − τ; Q_k(s, a) ←
    r + γ(1 − d)·V(s'); then Q̄ ← (1 − τ_p)·Q̄ + τ_p·Q. (IQL's critic and LOM's default one.)"""
    torch.manual_seed(0)
    batch, expectile = whole_batch(dataset()), 0.8
    critic = ExpectileCritic(OBS, ACT, members=2, expectile=expectile, discount=GAMMA, tau=TAU, lr=LR, hidden=HIDDEN)
    shift(critic.q_target)
    target_before = frozen(critic.q_target)
    q_bar = q_members(target_before, batch.obs, batch.act).min(1).values
    centre_value_on(critic.v.layers[-1], dense(frozen(critic.v), batch.obs)[..., 0], q_bar)
    ref_q, ref_v = leaves(critic.q), leaves(critic.v)

    u = q_bar - dense(ref_v, batch.obs)[..., 0]
    assert (u > 0).any() and (u < 0).any()
    v_loss = (torch.where(u > 0, expectile, 1 - expectile) * u**2).mean(-1)
    with torch.no_grad():
        y = batch.rew + GAMMA * (1 - torch.tensor(DONE)) * dense(ref_v, batch.next_obs)[..., 0]
    q_loss = ((q_members(ref_q, batch.obs, batch.act) - y[:, None]) ** 2).mean(-1).sum(1)
    (v_loss + q_loss).sum().backward()

    losses = critic.update(batch, SeedStreams())
    assert losses["critic/v_loss"].item() == pytest.approx(v_loss.item(), rel=1e-5)
    assert losses["critic/q_loss"].item() == pytest.approx(q_loss.item(), rel=1e-5)
    assert_stepped(critic.q, ref_q, LR)
    assert_stepped(critic.v, ref_v, LR)
    assert_polyak(critic.q_target, target_before, critic.q)


def test_sarsa_critic_bootstraps_from_the_datasets_next_action_with_clipped_noise_and_updates_targets_every_2nd_step():
    """Q_k(s, a) ← r + γ(1 − d)·min_k Q̄_k(s', clip(a' + clip(σ·ε, −0.5, 0.5), −1, 1)), a' the dataset's next
    action; the targets take a Polyak step after every 2nd update only."""
    torch.manual_seed(0)
    batch, sigma = whole_batch(dataset()), 0.8  # σ·ε beyond ±0.5 for some draws
    critic = SarsaCritic(OBS, ACT, members=2, smooth_noise=sigma, discount=GAMMA, tau=TAU, lr=LR, hidden=HIDDEN)
    shift(critic.q_target)
    target_before, ref_q = frozen(critic.q_target), leaves(critic.q)

    torch.manual_seed(5)
    noise = sigma * torch.randn(1, ROWS, ACT)
    assert (noise.abs() > 0.5).any()
    next_act = batch.next_act + noise.clamp(-0.5, 0.5)
    assert (next_act.abs() > 1).any()
    next_q = q_members(target_before, batch.next_obs, next_act.clamp(-1, 1)).min(1).values
    y = batch.rew + GAMMA * (1 - torch.tensor(DONE)) * next_q
    loss = ((q_members(ref_q, batch.obs, batch.act) - y[:, None]) ** 2).mean(-1).sum(1)
    loss.sum().backward()

    torch.manual_seed(5)
    assert critic.update(batch, SeedStreams())["critic/q_loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert_stepped(critic.q, ref_q, LR)
    assert_unchanged(critic.q_target, target_before)  # the 1st update leaves the targets alone
    critic.update(batch, SeedStreams())
    assert_polyak(critic.q_target, target_before, critic.q)


# -- IQL --------------------------------------------------------------------------------------------------------
def test_iql_actor_weights_log_likelihood_by_clipped_exp_of_beta_times_q_minus_v_of_the_same_state():
    """loss = −mean(min(exp(β·(min_k Q̄_k(s, a) − V(s))), C)·log π(a|s)), the weight a constant; then the
    cosine schedule's first step: lr·(1 + cos(π/T))/2."""
    torch.manual_seed(0)
    batch = whole_batch(dataset())
    hp = IQLConfig(beta=20.0, weight_clip=3.0, lr=LR)  # exp(β·A) passes C for A > 0.055
    agent = IQLAgent(OBS, ACT, config("IQL"), hp)
    shift(agent.critic.q_target)
    q_bar = q_members(frozen(agent.critic.q_target), batch.obs, batch.act).min(1).values
    centre_value_on(agent.critic.v.layers[-1], dense(frozen(agent.critic.v), batch.obs)[..., 0], q_bar)
    critic_before, ref = frozen(agent.critic), leaves(agent.actor)

    advantage = q_bar - dense(frozen(agent.critic.v), batch.obs)[..., 0]
    assert (hp.beta * advantage > math.log(hp.weight_clip)).any() and (advantage < 0).any()
    weight = torch.exp(hp.beta * advantage).clamp(max=hp.weight_clip)
    log_prob = gaussian_log_prob(dense(ref, batch.obs, "net.").tanh(), ref["log_std"], batch.act)
    loss = -(weight * log_prob).mean(-1)
    loss.sum().backward()

    losses = agent.update_actor(batch)
    assert losses["actor/loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert losses["actor/weight"].item() == pytest.approx(weight.mean(-1).item(), rel=1e-5)
    assert_stepped(agent.actor, ref, LR)
    assert_unchanged(agent.critic, critic_before)
    assert agent.optimizers["actor"].param_groups[0]["lr"] == pytest.approx(LR * (1 + math.cos(math.pi / 10)) / 2)


# -- TD3+BC -----------------------------------------------------------------------------------------------------
def td3bc_agent(hp: TD3BCConfig) -> TD3BCAgent:
    torch.manual_seed(0)
    agent = TD3BCAgent(OBS, ACT, config("TD3BC"), hp)
    shift(agent.q_target)
    shift(agent.actor_target, scale=3.0)  # large weights: target actions near ±1, where the outer clip acts
    return agent


def test_td3bc_critic_bootstraps_from_the_target_actor_with_clipped_noise_and_masks_terminal_rows():
    """Q_k(s, a) ← r + γ(1 − d)·min_k Q̄_k(s', clip(π̄(s') + clip(σ·ε, −c, c), −1, 1))."""
    hp = TD3BCConfig(policy_noise=0.8, noise_clip=0.3, lr=LR)
    agent, batch = td3bc_agent(hp), whole_batch(dataset())
    target_q, target_actor, ref_q = frozen(agent.q_target), frozen(agent.actor_target), leaves(agent.q)

    torch.manual_seed(5)
    noise = hp.policy_noise * torch.randn(1, ROWS, ACT)
    assert (noise.abs() > hp.noise_clip).any()
    next_act = dense(target_actor, batch.next_obs, "net.").tanh() + noise.clamp(-hp.noise_clip, hp.noise_clip)
    assert (next_act.abs() > 1).any()
    next_q = q_members(target_q, batch.next_obs, next_act.clamp(-1, 1)).min(1).values
    y = batch.rew + GAMMA * (1 - torch.tensor(DONE)) * next_q
    loss = ((q_members(ref_q, batch.obs, batch.act) - y[:, None]) ** 2).mean(-1).sum(1)
    loss.sum().backward()

    torch.manual_seed(5)
    assert agent.update_critic(batch)["critic/q_loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert_stepped(agent.q, ref_q, LR)


def test_td3bc_actor_maximises_q_scaled_by_alpha_over_mean_abs_q_plus_behaviour_cloning():
    """loss = −λ·mean Q_1(s, π(s)) + mean (π(s) − a)², λ = α / mean|Q_1(s, π(s))| a constant."""
    hp = TD3BCConfig(alpha=2.5, lr=LR)
    agent, batch = td3bc_agent(hp), whole_batch(dataset())
    critic_before, ref = frozen(agent.q), leaves(agent.actor)
    pi = dense(ref, batch.obs, "net.").tanh()
    q = q_members(frozen(agent.q), batch.obs, pi)[:, 0]  # the first member's, (S, B)
    lam = hp.alpha / q.abs().mean(-1).detach()
    loss = -lam * q.mean(-1) + ((pi - batch.act) ** 2).mean((1, 2))
    loss.sum().backward()

    assert agent.update_actor(batch)["actor/loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert_stepped(agent.actor, ref, LR)
    assert_unchanged(agent.q, critic_before)


def test_td3bc_updates_actor_and_targets_every_2nd_step_only():
    agent, data = td3bc_agent(TD3BCConfig(policy_delay=2, batch_size=4)), dataset()
    for step in range(1, 5):
        actor, target_q, target_actor = frozen(agent.actor), frozen(agent.q_target), frozen(agent.actor_target)
        losses = agent.train_step(data)
        if step % 2:
            assert "actor/loss" not in losses
            for module, before in ((agent.actor, actor), (agent.q_target, target_q),
                                   (agent.actor_target, target_actor)):
                assert_unchanged(module, before)
        else:
            assert "actor/loss" in losses
            assert not torch.equal(agent.actor.net.layers[0].weight.detach(), actor["net.layers.0.weight"])
            assert_polyak(agent.q_target, target_q, agent.q)
            assert_polyak(agent.actor_target, target_actor, agent.actor)


# -- BC ---------------------------------------------------------------------------------------------------------
def test_bc_maximises_the_gaussian_log_likelihood_of_the_datasets_actions():
    """loss = −mean log N(a; tanh(MLP(s)), σ) on a batch drawn uniformly with replacement."""
    torch.manual_seed(0)
    data = dataset()
    agent = BCAgent(OBS, ACT, config("BC"), BCConfig(lr=LR, batch_size=4))
    with torch.no_grad():
        agent.actor.log_std.copy_(torch.tensor([[[-0.5, 0.3]]]))  # (S, 1, A)
    ref = leaves(agent.actor)
    torch.manual_seed(3)
    batch = data.gather(torch.randint(ROWS, (1, 4)))
    loss = -gaussian_log_prob(dense(ref, batch.obs, "net.").tanh(), ref["log_std"], batch.act).mean(-1)
    loss.sum().backward()

    torch.manual_seed(3)
    assert agent.train_step(data)["actor/nll"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert_stepped(agent.actor, ref, LR)


# -- LOM --------------------------------------------------------------------------------------------------------
N = 3


def lom_agent(**overrides) -> tuple[LOMAgent, DeviceDataset]:
    torch.manual_seed(0)
    data = dataset()
    agent = LOMAgent(OBS, ACT, config(num_components=N, gmm_batch_size=5, **overrides))
    agent.finish_pretraining(data)
    shift(agent.critic.q_target)
    return agent, data


def test_lom_mixture_pretraining_minimises_the_mixtures_negative_log_likelihood():
    """loss = −mean log Σ_k w_k(s)·Π_j N(a_j; μ_kj(s), σ_kj(s)) on a batch drawn uniformly with replacement."""
    torch.manual_seed(0)
    data = dataset()
    agent = LOMAgent(OBS, ACT, config(num_components=N, gmm_batch_size=5))
    ref = leaves(agent.gmm)
    torch.manual_seed(3)
    idx = torch.randint(ROWS, (1, 5))
    obs, act = data.obs[idx], data.act[idx]  # (S, B, ...)
    means, stds, log_w = mixture(ref, obs, N)
    assert (dense(frozen(agent.gmm), obs, "net.")[..., N * ACT: 2 * N * ACT] > 0).any()  # the log-std clamp acts
    log_n = (-(act[..., None, :] - means) ** 2 / (2 * stds**2) - stds.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    loss = -torch.logsumexp(log_w + log_n, -1).mean(-1)
    loss.sum().backward()

    torch.manual_seed(3)
    assert agent.pretrain_step(data)["gmm/nll"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert_stepped(agent.gmm, ref, LR)


def mode_values(p: dict, obs: torch.Tensor, mode_net: str) -> torch.Tensor:
    """Q_mode(s, k), (S, B, N): one output per component, or the one-hot form MLP([s, one-hot(k)])."""
    if mode_net == "multihead":
        return dense(p, obs, "net.")
    seeds, states = obs.shape[:2]
    rows = torch.cat([obs.repeat_interleave(N, 1), torch.eye(N).repeat(seeds, states, 1)], -1)
    return dense(p, rows, "net.").view(seeds, states, N)


@pytest.mark.parametrize("mode_net", ["multihead", "onehot"])
def test_lom_mode_value_regresses_on_the_target_q_of_an_action_drawn_from_each_component(mode_net):
    """loss = mean_{s,k} (Q_mode(s, k) − min_m Q̄_m(s, clip(μ_k(s) + σ_k(s)·ε_k, −1, 1)))²."""
    agent, data = lom_agent(mode_net=mode_net)
    batch = whole_batch(data)
    means, stds, _ = mixture(frozen(agent.gmm), batch.obs, N)
    target_q, ref = frozen(agent.critic.q_target), leaves(agent.mode_value)
    torch.manual_seed(11)
    actions = (means + stds * torch.randn(1, ROWS, N, ACT)).clamp(-1, 1)
    target = torch.stack([q_members(target_q, batch.obs, actions[:, :, k]).min(1).values for k in range(N)], -1)
    loss = ((mode_values(ref, batch.obs, mode_net) - target) ** 2).mean((1, 2))
    loss.sum().backward()

    torch.manual_seed(11)
    assert agent.update_mode_value(batch)["mode_value/loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert_stepped(agent.mode_value, ref, LR)


def check_lom_actor_step(weigh, critic: str = "expectile", baseline: str = "value", **overrides):
    """The actor update against its reference: k*(s) = argmax of Q_mode(s, k) over the components with w_k(s) >=
    the floor; a* = clip(clip(μ_k* + σ_k*·ε, −1, 1) + ac_rand·ε', −1, 1); loss = mean(ω·mean_j (π(s) − a*)²), ω =
    `weigh`(g) a constant, g = Q̄(s, a*) − b(s), b(s) = V(s) or Q̄(s, π(s)), Q̄ the minimum over the target
    ensemble. Returns the gaps and the weights."""
    agent, data = lom_agent(critic=critic, weight_baseline=baseline, min_component_weight=0.05, ac_rand=0.3,
                            weight_clip=3.0, **overrides)
    batch = whole_batch(data)
    with torch.no_grad():
        # Component 0 gets 1 % of the weight everywhere and the highest mode value everywhere: the floor must skip
        # it. Between components 1 and 2 the mode value decides, state by state.
        logits = agent.gmm.net.layers[-1]  # weight (S, in, out), bias (S, 1, out)
        logits.weight[..., 2 * N * ACT:] = 0
        logits.bias[..., 2 * N * ACT:] = torch.tensor([math.log(0.01 / 0.99 * 2), 0.0, 0.0])
        head = agent.mode_value.net.layers[-1]
        q_mode = mode_values(frozen(agent.mode_value), batch.obs, "multihead")
        head.bias[..., 2] += (q_mode[..., 1] - q_mode[..., 2]).quantile(0.5, dim=-1, keepdim=True)  # no ties
        head.bias[..., 0] += 5.0
    agent.finish_pretraining(data)
    means, stds, log_w = mixture(frozen(agent.gmm), batch.obs, N)
    assert torch.allclose(log_w[..., 0].exp(), torch.tensor(0.01))
    q_mode = mode_values(frozen(agent.mode_value), batch.obs, "multihead")
    assert (q_mode.argmax(-1) == 0).all()
    k = q_mode[..., 1:].argmax(-1) + 1  # (S, B)
    assert (k == 1).any() and (k == 2).any()
    seeds, rows = torch.arange(1)[:, None], torch.arange(ROWS)

    target_q, ref = frozen(agent.critic.q_target), leaves(agent.actor)
    torch.manual_seed(13)
    a_star = (means[seeds, rows, k] + stds[seeds, rows, k] * torch.randn(1, ROWS, ACT)).clamp(-1, 1)
    a_star = (a_star + 0.3 * torch.randn(1, ROWS, ACT)).clamp(-1, 1)
    pi = dense(ref, batch.obs, "net.").tanh()
    q_star = q_members(target_q, batch.obs, a_star).min(1).values
    if baseline == "value":
        gap = q_star - dense(frozen(agent.critic.v), batch.obs)[..., 0]
    else:
        gap = q_star - q_members(target_q, batch.obs, pi.detach()).min(1).values
    weight = weigh(gap)
    assert (weight == 3.0).any() and (weight < 3.0).any()  # the clip C acts on some rows, not all
    loss = (weight * ((pi - a_star) ** 2).mean(-1)).mean(-1)
    loss.sum().backward()

    torch.manual_seed(13)
    losses = agent.update_actor(batch)
    assert losses["actor/loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert losses["actor/weight"].item() == pytest.approx(weight.mean(-1).item(), rel=1e-5)
    assert_stepped(agent.actor, ref, LR)
    return gap, weight


@pytest.mark.parametrize("critic, baseline", [("expectile", "value"), ("sarsa", "policy")])
def test_lom_actor_imitates_a_draw_from_the_best_supported_component_weighted_by_clipped_exp_of_the_q_gap(
        critic, baseline):
    """--weight_rule fixed: ω = min(exp(β·g), C)."""
    gap, _ = check_lom_actor_step(lambda gap: torch.exp(20.0 * gap).clamp(max=3.0), critic, baseline, beta=20.0)
    assert (gap < 0).any()


def test_lom_actor_weighted_by_the_gap_over_its_rms():
    """--weight_rule rms, first batch: c² = mean g² over the batch, ω = min(exp(β_rms·g / c), C)."""
    def weigh(gap):
        return torch.exp(4.0 * gap / gap.square().mean(-1, keepdim=True).sqrt()).clamp(max=3.0)

    check_lom_actor_step(weigh, weight_rule="rms", rms_beta=4.0)


def test_lom_actor_weighted_at_the_temperature_that_gives_the_target_effective_sample_size():
    """--weight_rule ess: ω = min(n·softmax(λ·g), C) with λ the root of (Σω)²/(n·Σω²) = f before the cap (found
    here by scipy's Brent solver on λ itself, not by the code's bisection on the standardised gaps)."""
    from scipy.optimize import brentq

    fraction = 0.4

    def weigh(gap):
        g = gap[0].double().numpy()

        def ess_minus_target(lam):
            w = np.exp(lam * (g - g.max()))
            return w.sum() ** 2 / (len(g) * (w ** 2).sum()) - fraction

        lam = brentq(ess_minus_target, 0.0, 1e6 / (g.max() - g.min()), xtol=1e-14, rtol=1e-12)
        w = len(g) * np.exp(lam * (g - g.max())) / np.exp(lam * (g - g.max())).sum()
        return torch.tensor(w, dtype=torch.float32)[None].clamp(max=3.0)

    check_lom_actor_step(weigh, weight_rule="ess", ess_fraction=fraction)


def test_lom_train_step_updates_critic_mode_value_and_actor_once_each():
    agent, data = lom_agent()
    before = {name: frozen(getattr(agent, name)) for name in ("gmm", "critic", "mode_value", "actor")}
    losses = agent.train_step(data)
    assert {"critic/v_loss", "critic/q_loss", "mode_value/loss", "actor/loss"} <= set(losses)
    assert_unchanged(agent.gmm, before["gmm"])  # frozen after pre-training
    for name in ("critic", "mode_value", "actor"):
        module = getattr(agent, name)
        assert any(not torch.equal(p.detach(), before[name][n]) for n, p in module.named_parameters()), name


def test_iqls_device_side_cosine_decay_follows_torchs_cosine_annealing_step_by_step():
    from lom.networks import CosineDecay

    decay = CosineDecay(3e-4, 1000)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)
    for _ in range(1000):
        decay.advance()
        opt.step()
        reference.step()
        assert decay.lr.item() == pytest.approx(reference.get_last_lr()[0], abs=1e-9)
    assert decay.lr.item() == pytest.approx(0.0, abs=1e-9)
