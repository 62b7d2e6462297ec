"""The method's pieces on cases whose right answer is known: the mixture, mode selection, weights, both critics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from plain_paths import UncachedLOMAgent

from lom.agents.critics import ExpectileCritic, SarsaCritic, expectile_loss
from lom.agents.lom import LOMAgent
from lom.agents.weights import imitation_weight
from lom.config import LOM_BETA, LOM_MIN_COMPONENT_WEIGHT, PAPER_HYPERPARAMS, TrainConfig
from lom.data.batches import DeviceDataset, ObservationNormalizer
from lom.data.types import Transitions
from lom.networks import EnsembleMLP, OneHotModeValue, MultiHeadModeValue
from lom.seeds import SeedStreams


def make_transitions(obs, act, rew=None, next_obs=None, next_act=None, done=None) -> Transitions:
    n = len(obs)
    f32 = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
    return Transitions(
        observations=f32(obs), actions=f32(act),
        rewards=f32(np.zeros(n) if rew is None else rew),
        next_observations=f32(obs if next_obs is None else next_obs),
        next_actions=f32(act if next_act is None else next_act),
        terminals=f32(np.zeros(n) if done is None else done),
    )


def lom_config(**overrides) -> TrainConfig:
    cfg = TrainConfig(training_steps=100, gmm_steps=100, eval_every=100).resolve("multimodal-fork-v0")
    return dataclasses.replace(cfg, **overrides)


def test_d4rl_names_take_the_papers_row_and_our_weight_rule():
    """Preset lom on a D4RL name: the paper's K, N, ac_rand, smooth_noise and C; β and the floor are ours."""
    paper = PAPER_HYPERPARAMS["walker2d-full-replay-v2"]
    cfg = TrainConfig().resolve("walker2d-full-replay-v2")
    assert cfg.lom == dataclasses.replace(paper, beta=LOM_BETA, min_component_weight=LOM_MIN_COMPONENT_WEIGHT)
    assert TrainConfig(preset="paper").resolve("walker2d-full-replay-v2").lom == paper
    assert TrainConfig(num_components=10).resolve("walker2d-v4_full-replay", 6).num_components == 10


def test_the_fork_discounts_more_steeply_than_the_papers_datasets_unless_told():
    """γ is per dataset: 0.9 on the built-in benchmark (delay must cost enough to separate its modes), the paper's
    0.99 elsewhere, and --discount wins over both."""
    assert TrainConfig().resolve("multimodal-fork-v0").discount == 0.9
    assert TrainConfig().resolve("hopper-medium-replay-v2").discount == 0.99
    assert TrainConfig().resolve("halfcheetah-v4_full-replay", 6).discount == 0.99
    assert TrainConfig(discount=0.97).resolve("multimodal-fork-v0").discount == 0.97


def test_mixture_recovers_three_known_modes():
    torch.manual_seed(1)
    rng = np.random.default_rng(0)
    true_means = np.array([[-0.6, 0.5], [0.1, -0.4], [0.7, 0.6]])
    labels = rng.integers(0, 3, 6000)
    actions = true_means[labels] + 0.05 * rng.standard_normal((6000, 2))
    obs = rng.standard_normal((6000, 1)) * 0.01  # one state: a pure 3-mode action distribution
    data = DeviceDataset(make_transitions(obs, actions), ObservationNormalizer.fit(obs, False), torch.device("cpu"))
    # The other networks' sizes are pinned: they decide the random draws that follow, and a 3-component fit can
    # lose a component on some draws (5 of torch seeds 0-5 with K = 1 and 192-wide networks, 2 of 6 with these:
    # since the seed axis (weights drawn (in, out)), seeds 0 and 4 fail; 0's
    # components for the two upper modes are still far from them after 1000 steps).
    agent = LOMAgent(1, 2, lom_config(num_components=3, gmm_lr=3e-3, gmm_batch_size=512, num_critics=2,
                                      hidden_width=256))
    first = agent.pretrain_step(data)["gmm/nll"].item()
    for _ in range(1000):
        last = agent.pretrain_step(data)["gmm/nll"].item()
    assert last < first - 2.0
    means, _, log_w = agent.gmm(torch.zeros(1, 1, 1))  # one seed, one state
    found = means[0, 0].detach().numpy()
    # Every true mode has a fitted component within 0.1, and the weights are about a third each.
    dist = np.linalg.norm(found[:, None] - true_means[None], axis=-1)
    assert dist.min(axis=0).max() < 0.1
    assert np.allclose(log_w.exp()[0, 0].detach().numpy(), 1 / 3, atol=0.05)


@pytest.mark.parametrize("mode_net", [MultiHeadModeValue, OneHotModeValue])
def test_mode_selection_picks_the_highest_value_component(mode_net):
    """Component k's actions have value −(a − 0.5)²: the component centred at 0.5 must be selected."""
    torch.manual_seed(0)
    centres = torch.tensor([-0.8, 0.5, 0.0, -0.3])
    obs = torch.randn(1, 512, 3)  # one seed: (S, B, O)
    net = mode_net(3, 4)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(300):
        actions = centres + 0.1 * torch.randn(1, 512, 4)
        target = -(actions - 0.5).square()
        loss = torch.nn.functional.mse_loss(net(obs), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    picked = net(torch.randn(1, 256, 3)).argmax(-1)
    assert picked.shape == (1, 256)
    assert (picked == 1).float().mean() > 0.95


def test_actor_imitates_the_best_mode_action():
    """With a value table favouring component 2, the actions LOM imitates come from component 2."""
    torch.manual_seed(0)
    agent = LOMAgent(2, 1, lom_config(num_components=3))
    batch_obs = torch.randn(64, 2)
    means = torch.tensor([[-0.7], [0.0], [0.6]]).expand(1, 64, 3, 1)  # (S, B, N, A)
    stds = torch.full((1, 64, 3, 1), 1e-3)
    log_weights = torch.tensor([0.2, 0.5, 0.3]).log().expand(1, 64, 3)
    agent.behaviour = lambda batch: (means, stds, log_weights)
    agent.best_component = lambda obs, log_weights: torch.full(obs.shape[:-1], 2)
    batch = DeviceDataset(make_transitions(batch_obs.numpy(), np.zeros((64, 1))),
                          ObservationNormalizer.fit(batch_obs.numpy(), False),
                          torch.device("cpu")).sample(agent.rng, 64)
    a_star, picks_heaviest = agent.best_mode_action(batch)
    assert a_star.shape == (1, 64, 1) and picks_heaviest.shape == (1, 64)
    assert torch.allclose(a_star, torch.full((1, 64, 1), 0.6), atol=0.01)
    assert not picks_heaviest.any()  # component 1 is the heaviest


@pytest.mark.parametrize("schedule, middle, last", [("constant", 1e-3, 1e-3), ("cosine", 0.5e-3, 0.0)])
def test_the_actors_learning_rate_follows_its_schedule_over_the_run(schedule, middle, last):
    """--actor_lr_schedule cosine takes LOM's actor from --actor_lr to 0 at the last training step; constant keeps
    it; the other networks' rates never move."""
    torch.manual_seed(0)
    cfg = lom_config(training_steps=4, actor_lr=1e-3, actor_lr_schedule=schedule)
    obs = np.random.default_rng(0).normal(size=(64, 2))
    data = DeviceDataset(make_transitions(obs, np.zeros((64, 1))), ObservationNormalizer.fit(obs, False),
                         torch.device("cpu"))
    agent = LOMAgent(2, 1, cfg)
    agent.finish_pretraining(data)
    rates = []
    for _ in range(cfg.training_steps):
        agent.train_step(data)
        rates.append(float(agent.optimizers["actor"].param_groups[0]["lr"]))
    assert rates[1] == pytest.approx(middle, abs=1e-9) and rates[-1] == pytest.approx(last, abs=1e-9)  # float32
    assert agent.hyperparameters()["actor_lr_schedule"] == schedule
    assert float(agent.optimizers["mode_value"].param_groups[0]["lr"]) == cfg.mode_lr


@pytest.mark.parametrize("min_weight, expected", [(0.0, 0), (0.05, 2)])
def test_components_without_support_are_not_selected_when_a_weight_floor_is_set(min_weight, expected):
    """Component 0 has the highest mode value but only 1% weight: the floor excludes it, the paper's rule does not."""
    agent = LOMAgent(2, 1, lom_config(num_components=3, min_component_weight=min_weight))
    last = agent.mode_value.net.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([3.0, 1.0, 2.0]))  # bias (S, 1, N)
    log_weights = torch.tensor([[0.01, 0.49, 0.50]]).log().expand(1, 4, 3)
    picked = agent.best_component(torch.zeros(1, 4, 2), log_weights)
    assert picked.shape == (1, 4) and (picked == expected).all()


def test_imitation_weights_are_clipped_at_C():
    q_star = torch.tensor([0.0, 0.5, -1.0, 1.0, 1000.0])
    q_pi = torch.zeros(5)
    w = imitation_weight(q_star - q_pi, beta=5.0, clip=50.0)
    assert w[0] == pytest.approx(1.0)
    assert w[1] == pytest.approx(np.exp(2.5), rel=1e-5)
    assert w[2] == pytest.approx(np.exp(-5.0), rel=1e-5)
    assert w[3] == 50.0 and w[4] == 50.0  # e^5 > C, and an overflow to inf is clipped too
    assert torch.isfinite(w).all()


@pytest.mark.parametrize("baseline", ["policy", "value"])
def test_imitation_weight_compares_with_the_chosen_baseline(baseline):
    """policy: the authors' rule, clip(exp(β·(Q(s, a*) − Q(s, π(s)))), 0, C); value: Q(s, a*) − V(s) instead."""
    torch.manual_seed(0)
    critic = "sarsa" if baseline == "policy" else "expectile"
    agent = LOMAgent(3, 2, lom_config(num_components=2, critic=critic, weight_baseline=baseline, beta=2.0,
                                      weight_clip=3.0))
    obs = torch.randn(256, 3)
    t = make_transitions(obs.numpy(), np.zeros((256, 2)))
    batch = DeviceDataset(t, ObservationNormalizer.fit(t.observations, False),
                          torch.device("cpu")).sample(agent.rng, 256)
    a_star = torch.rand(1, 256, 2) * 2 - 1
    agent.best_mode_action = lambda batch: (a_star, torch.zeros(1, 256, dtype=torch.bool))
    pi = agent.actor(batch.obs).detach()
    q_star = agent.critic.value(batch.obs, a_star)
    base = agent.critic.value(batch.obs, pi) if baseline == "policy" else agent.critic.state_value(batch.obs)
    weight = torch.exp(2.0 * (q_star - base)).clamp(max=3.0)
    expected_loss = (weight * (pi - a_star).square().mean(-1)).mean()

    losses = agent.update_actor(batch)
    assert losses["actor/loss"].item() == pytest.approx(expected_loss.item(), rel=1e-5)
    assert losses["actor/q_gap"].item() == pytest.approx((q_star - base).mean().item(), rel=1e-5, abs=1e-6)
    assert losses["actor/weight_at_clip"].item() == pytest.approx((weight >= 3.0).float().mean().item())
    assert losses["actor/weight_below_1e-3"].item() == pytest.approx((weight < 1e-3).float().mean().item())
    assert losses["actor/picks_heaviest"].item() == 0.0


def test_expectile_loss_is_asymmetric():
    diff = torch.tensor([[1.0, -1.0]])  # (S, B)
    assert expectile_loss(diff[:, :1], 0.7).item() == pytest.approx(0.7)
    assert expectile_loss(diff[:, 1:], 0.7).item() == pytest.approx(0.3)
    # One loss per seed, each the mean over its own row.
    assert expectile_loss(torch.tensor([[1.0, 1.0], [-1.0, -1.0]]), 0.7).tolist() == pytest.approx([0.7, 0.3])


def two_state_mdp():
    """s0 --a--> s1 (reward 1), s1 --a--> terminal (reward 2): Q(s0) = 1 + γ·2, Q(s1) = 2."""
    obs = np.array([[1.0, 0.0], [0.0, 1.0]])
    next_obs = np.array([[0.0, 1.0], [0.0, 0.0]])
    act = np.array([[0.3], [-0.3]])
    return make_transitions(obs, act, rew=[1.0, 2.0], next_obs=next_obs, next_act=[[-0.3], [0.0]], done=[0.0, 1.0])


@pytest.mark.parametrize("kind", ["expectile", "sarsa"])
def test_critics_learn_the_values_of_a_tiny_mdp(kind):
    torch.manual_seed(0)
    gamma = 0.9
    t = two_state_mdp()
    data = DeviceDataset(t, ObservationNormalizer.fit(t.observations, False), torch.device("cpu"))
    if kind == "expectile":
        critic = ExpectileCritic(2, 1, members=2, expectile=0.7, discount=gamma, tau=0.05, lr=3e-3)
    else:
        critic = SarsaCritic(2, 1, members=2, smooth_noise=0.0, discount=gamma, tau=0.05, lr=3e-3)
    rng = SeedStreams()  # one seed, torch's global generator
    for _ in range(3000):
        critic.update(data.sample(rng, 32), rng)
    q = critic.value(data.obs.unsqueeze(0), data.act.unsqueeze(0))
    assert q.shape == (1, 2)
    assert q[0].numpy() == pytest.approx([1 + gamma * 2, 2.0], abs=0.05)


def test_ensemble_members_are_independent_networks():
    torch.manual_seed(0)
    ens = EnsembleMLP((3,), 4, (8,), 1)
    x = torch.randn(5, 4)
    out = ens(x.expand(3, 5, 4))  # the same input to every member
    assert out.shape == (3, 5, 1)
    assert not torch.allclose(out[0], out[1])
    # Member 1 equals an ordinary MLP with member 1's weights (stored (in, out)), and reads only its own inputs.
    xs = torch.randn(3, 5, 4)
    w0, b0 = ens.layers[0].weight[1], ens.layers[0].bias[1]
    w1, b1 = ens.layers[1].weight[1], ens.layers[1].bias[1]
    assert torch.allclose(out[1], torch.relu(x @ w0 + b0) @ w1 + b1, atol=1e-6)
    assert torch.allclose(ens(xs)[1], torch.relu(xs[1] @ w0 + b0) @ w1 + b1, atol=1e-6)


def test_cached_behaviour_gives_the_same_losses_as_the_plain_step():
    """The fast path (frozen mixture evaluated once over the dataset) changes no number."""
    rng = np.random.default_rng(1)
    t = make_transitions(rng.standard_normal((500, 3)), rng.uniform(-1, 1, (500, 2)), rew=rng.standard_normal(500),
                         next_obs=rng.standard_normal((500, 3)), next_act=rng.uniform(-1, 1, (500, 2)))
    data = DeviceDataset(t, ObservationNormalizer.fit(t.observations, True), torch.device("cpu"))
    runs = []
    for cached in (True, False):
        torch.manual_seed(3)
        make = LOMAgent if cached else UncachedLOMAgent
        agent = make(3, 2, lom_config(num_components=4, critic="sarsa", weight_baseline="policy", ac_rand=0.2))
        for _ in range(5):
            agent.pretrain_step(data)
        agent.finish_pretraining(data)
        runs.append([{k: v.item() for k, v in agent.train_step(data).items()} for _ in range(20)])
    for fast, plain in zip(*runs):
        assert fast.keys() == plain.keys()
        for key in fast:
            assert fast[key] == pytest.approx(plain[key], rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("agent", ["LOM", "BC", "IQL", "TD3BC"])
def test_network_widths_reach_every_network_of_every_agent(agent):
    from lom.agents import make_agent

    def layer_sizes(module: torch.nn.Module) -> set[int]:
        return {size for name, p in module.named_parameters() if name.endswith("weight") for size in p.shape}

    cfg = dataclasses.replace(lom_config(agent=agent), hidden_width=24, gmm_hidden_width=40)
    model = make_agent(cfg, obs_dim=3, act_dim=2)
    sizes = layer_sizes(model)
    assert 24 in sizes and not {256, 512} & sizes, f"{agent}'s layer sizes: {sorted(sizes)}"
    if agent == "LOM":
        assert 40 in layer_sizes(model.gmm) and 40 not in layer_sizes(model.actor)
