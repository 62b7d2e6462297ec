"""The speed-ups change no number: fast vs plain LOM steps, the batched Q and one-hot forms, and the benchmark runs."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from plain_paths import PlainLOMAgent

from lom.agents.lom import LOMAgent
from lom.config import TrainConfig
from lom.data import load_transitions, resolve_dataset
from lom.data.batches import DeviceDataset, ObservationNormalizer
from lom.data.types import Transitions
from lom.fork import behaviour as fork_behaviour
from lom.networks import CPU_BLOCK_ROWS, OneHotModeValue, QEnsemble

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"


def random_data(rows: int = 600, obs_dim: int = 3, act_dim: int = 2, seed: int = 1) -> DeviceDataset:
    rng = np.random.default_rng(seed)
    f32 = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
    t = Transitions(observations=f32(rng.standard_normal((rows, obs_dim)) * 2 + 1),
                    actions=f32(rng.uniform(-1, 1, (rows, act_dim))), rewards=f32(rng.standard_normal(rows)),
                    next_observations=f32(rng.standard_normal((rows, obs_dim))),
                    next_actions=f32(rng.uniform(-1, 1, (rows, act_dim))), terminals=f32(rng.random(rows) < 0.05))
    return DeviceDataset(t, ObservationNormalizer.fit(t.observations, True), torch.device("cpu"))


def config(**overrides) -> TrainConfig:
    cfg = TrainConfig(training_steps=100, gmm_steps=100, eval_every=100).resolve("multimodal-fork-v0")
    return dataclasses.replace(cfg, **overrides)


@pytest.mark.parametrize("critic, mode_net", [("expectile", "multihead"), ("sarsa", "onehot")])
def test_fast_step_gives_the_same_losses_as_the_plain_step(critic, mode_net):
    """Cached mixture, batched Q over actions (in several blocks here), fused Adam vs none of them: same losses."""
    data = random_data()
    # 1024 mode states x 4 components is more rows than one CPU block, so the blocked path is exercised.
    cfg = config(critic=critic, mode_net=mode_net, num_components=4, num_critics=2, ac_rand=0.2, mode_batch_size=1024,
                 weight_baseline="value" if critic == "expectile" else "policy")
    assert cfg.mode_batch_size * cfg.num_components > CPU_BLOCK_ROWS
    runs = []
    for fast in (True, False):
        torch.manual_seed(3)
        agent = (LOMAgent if fast else PlainLOMAgent)(3, 2, cfg)
        pretrain = [agent.pretrain_step(data)["gmm/nll"].item() for _ in range(5)]
        agent.finish_pretraining(data)
        runs.append((pretrain, [{k: v.item() for k, v in agent.train_step(data).items()} for _ in range(15)]))
    (fast_pretrain, fast_steps), (plain_pretrain, plain_steps) = runs
    assert fast_pretrain == plain_pretrain  # multi-tensor Adam is bit-identical to the plain loop
    for fast_losses, plain_losses in zip(fast_steps, plain_steps):
        assert fast_losses.keys() == plain_losses.keys()
        for key in fast_losses:
            assert fast_losses[key] == pytest.approx(plain_losses[key], rel=1e-4, abs=1e-5), key


def test_q_over_many_actions_per_state_equals_scoring_every_row():
    torch.manual_seed(0)
    states, m = 700, 7  # 4,900 rows: several CPU blocks, the last one partial
    for seeds in (1, 2):  # one seed (torch's generator), and two stacked seeds with their own weights
        generators = None if seeds == 1 else [torch.Generator().manual_seed(s) for s in range(seeds)]
        q = QEnsemble(obs_dim=5, act_dim=3, members=3, generators=generators)
        obs, actions = torch.randn(seeds, states, 5), torch.rand(seeds, states, m, 3) * 2 - 1
        rows = q(obs.repeat_interleave(m, dim=1), actions.reshape(seeds, -1, 3)).view(seeds, 3, states, m)
        assert torch.allclose(q.over_actions(obs, actions), rows, atol=1e-5)


def test_one_hot_mode_value_is_the_mlp_on_state_and_one_hot_code():
    """The state part computed once per state is the same network as the authors' MLP on [s, one-hot(k)], gradients
    included."""
    torch.manual_seed(0)
    net = OneHotModeValue(obs_dim=4, components=5)
    obs = torch.randn(1, 32, 4)  # one seed: (S, B, O)
    inputs = torch.cat([obs.repeat_interleave(5, dim=1), torch.eye(5).repeat(32, 1).unsqueeze(0)], dim=-1)
    plain = net.net(inputs).view(1, 32, 5)
    fast = net(obs)
    assert fast.shape == (1, 32, 5)
    assert torch.allclose(fast, plain, atol=1e-5)
    fast_grads = torch.autograd.grad(fast.square().sum(), list(net.parameters()))
    plain_grads = torch.autograd.grad(plain.square().sum(), list(net.parameters()))
    for a, b in zip(fast_grads, plain_grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_multihead_and_onehot_mode_values_select_the_same_mode_on_the_fork():
    """On the multimodal fork's states, with its three behaviour modes as the mixture and a fixed critic that values
    actions by their closeness to the best gap's mode, both mode-value nets learn to pick that mode."""
    t = load_transitions(resolve_dataset("multimodal-fork-v0"), progress=False)
    data = DeviceDataset(t, ObservationNormalizer.fit(t.observations, True), torch.device("cpu"))
    positions = t.observations.astype(np.float64)
    modes = [fork_behaviour.mode_actions(positions, np.full(len(t), k)) for k in range(3)]
    means = torch.as_tensor(np.stack(modes, axis=1), dtype=torch.float32)  # (rows, 3 modes, 2)
    stds = torch.full_like(means, fork_behaviour.ACTION_NOISE)
    best_mode_action = means[:, 0]  # gap 0 is the best gap

    def fixed_critic(obs_idx: torch.Tensor):
        # actions (S, B, M, A) -> values (S, B, M), as the agent's action_values
        return lambda obs, actions: -(actions - best_mode_action[obs_idx].unsqueeze(2)).square().sum(-1)

    picks = {}
    for mode_net in ("multihead", "onehot"):
        torch.manual_seed(0)
        agent = LOMAgent(2, 2, config(mode_net=mode_net, num_components=3))
        # batch.idx is (S, B): the behaviour is (S, B, N, A) and (S, B, N).
        agent.behaviour = lambda batch: (means[batch.idx], stds[batch.idx], torch.zeros(*batch.idx.shape, 3))
        for _ in range(300):
            batch = data.sample(agent.rng, 256)
            agent.action_values = fixed_critic(batch.idx)
            agent.update_mode_value(batch)
        with torch.no_grad():
            picks[mode_net] = agent.mode_value(data.obs.unsqueeze(0)).argmax(dim=-1).squeeze(0)
    # States where two modes act alike have no single answer; judge only where the best mode stands apart.
    gap = (means[:, 1:] - means[:, :1]).square().sum(-1).min(dim=1).values
    distinct = gap > 0.1
    assert distinct.float().mean() > 0.5
    agree = (picks["multihead"] == picks["onehot"])[distinct].float().mean()
    best = {name: (k == 0)[distinct].float().mean() for name, k in picks.items()}
    assert agree > 0.95 and min(best.values()) > 0.95, (agree, best)


def load_benchmark(monkeypatch):
    spec = importlib.util.spec_from_file_location("throughput_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("critic", ["expectile", "sarsa"])
def test_benchmark_loops_run_on_a_small_dataset(critic, monkeypatch):
    """The benchmark's two loops train (finite losses) and are timed, ours and the reference on the same settings."""
    bench = load_benchmark(monkeypatch)
    host = bench.synthetic_data(2_000)
    data = bench.device_data(host, torch.device("cpu"))
    cfg = bench.lom_config(critic, batch_scale=0.25)
    reference = bench.ReferenceLOM(host, cfg, torch.device("cpu"))
    assert all(math.isfinite(v) for v in {**reference.gmm_step(), **reference.train_step()}.values())
    behaviour, _ = bench.pretrained_behaviour(cfg, data)
    ours = bench.OurLoop(bench.our_agent(cfg, data, behaviour), data)
    plan = bench.Plan(warmup=1, repeats=2, gmm_steps=2, lom_steps=2, eval_repeats=0)
    row = bench.compare("lom", "test", ours.train_step, reference.train_step, plan, 2, torch.device("cpu"))
    assert row.ours > 0 and row.reference > 0 and row.ratio == row.ours / row.reference
    means = ours.window.take_means()  # one dict per seed: this agent has one
    assert len(means) == 1 and means[0] and all(math.isfinite(v) for v in means[0].values())
