"""Throughput: this implementation's training loop and evaluation against the authors' loop structure.

On synthetic data of halfcheetah-full-replay-v2's size (1,000,000 transitions, 17-d states, 6-d actions) and with that
dataset's settings (N = 10 components, K = 1 critic; batches 512 mixture / 256 critic / 1024 mode / 256 actor), one
process measures, after warm-up, the median of several repeats with ours and the reference interleaved:
  - mixture pre-training steps/s and full LOM steps/s (critic + mode value + actor) for both critics;
  - the same for `ReferenceLOM`, a re-implementation in our own code of the per-step STRUCTURE of the authors'
    released loop (numpy index sampling and a host-to-device copy of every batch, numpy standardisation of every
    batch, one network and one optimiser per ensemble member, the mixture re-evaluated for every batch, the one-hot
    mode-value net on every (state, component) row, `.item()` on every logged value every step);
  - on a CUDA device, our LOM step captured as CUDA graphs (--cuda_graphs; "not measured" elsewhere);
  - evaluation wall time of 10 episodes of 1000 steps of HalfCheetah-v4, one after another vs our vector env;
  - stacked seeds (`train.py --seeds`): LOM, IQL and TD3BC steps/s with one seed and with 5 seeds in one model
    (seed-steps/s = steps/s x seeds), eager and, on CUDA, captured; and the seconds one evaluation of 10 episodes
    per seed takes for 1 and for 5 seeds at once.

    python benchmarks/throughput.py --quick              # under 5 minutes on 2 CPU cores
    python benchmarks/throughput.py --json out.json      # more repeats, the K=2 sarsa critic too; figures to JSON
    python benchmarks/throughput.py --scaling            # steps/s against batch size and mixture components
    python benchmarks/throughput.py --device cuda        # on a GPU

Exits non-zero when LOM (either critic, default mode-value net) is under 3x the reference or mixture pre-training
under 1x, on a CPU only (not judged for --scaling): 3x is what the FLOP counts allow on a CPU, while on a GPU both
loops of these small networks are bound by kernel launches, not arithmetic.

Threads: one by default, as train.py (docs/runs.md, "Threads"); --threads N for more. More OpenMP threads than free
cores is what to avoid on a shared CPU: a spinning OpenMP worker takes the core its own main thread needs and every
parallel op waits for a scheduler tick (steps measured 10-40x slower here, ours and the reference alike).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# Run from a checkout without installing; tests/ holds the plain evaluation ours is timed against.
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

from lom.agents import make_agent  # noqa: E402
from lom.agents.lom import LOMAgent  # noqa: E402
from lom.cli import OneLineParser, run_cli  # noqa: E402
from lom.config import TrainConfig  # noqa: E402
from lom.data import resolve_dataset  # noqa: E402
from lom.data.batches import DeviceDataset, ObservationNormalizer  # noqa: E402
from lom.data.types import Transitions  # noqa: E402
from lom.devices import select_device  # noqa: E402
from lom.errors import LOMError  # noqa: E402
from lom.io import write_json  # noqa: E402
from lom.networks import DeterministicActor, OneSeed  # noqa: E402
from lom.training.captured_steps import CapturedStep  # noqa: E402
from lom.training.evaluation import evaluate, evaluate_seeds  # noqa: E402
from lom.training.loss_window import LossWindow  # noqa: E402
from plain_paths import evaluate_one_by_one  # noqa: E402

DATASET = "halfcheetah-full-replay-v2"
TRANSITIONS, OBS_DIM, ACT_DIM = 1_000_000, 17, 6
EVAL_EPISODES = 10
STACKED_SEEDS = 5
LOM_TARGET, GMM_TARGET = 3.0, 1.0


# -- the reference: the authors' per-step structure, re-implemented ---------------------------------------------------
def plain_mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim))


# The authors' replay buffer hands out all of these on every draw, whichever the update uses.
SAMPLE = ("obs", "act", "rew", "next_obs", "done")
SAMPLE_WITH_NEXT_ACTION = (*SAMPLE, "next_act")


@dataclass
class HostData:
    """The dataset as the authors' replay buffer holds it: raw numpy arrays, standardised batch by batch."""

    obs: np.ndarray
    act: np.ndarray
    rew: np.ndarray
    next_obs: np.ndarray
    next_act: np.ndarray
    done: np.ndarray
    obs_mean: np.ndarray
    obs_std: np.ndarray


class ReferenceLOM:
    """The authors' loop structure (not their code): per step a critic update, a mode-value update, an actor update.

    The critic is a Python list of K separate Q networks, each with its own Adam; `critic="sarsa"` is the authors'
    critic, `critic="expectile"` an IQL-style critic built the same way (separate V, Q and target networks), which
    the authors do not have. Mode values and imitation weights use the first Q network, as the authors' code does.
    """

    def __init__(self, data: HostData, cfg: TrainConfig, device: torch.device, seed: int = 0):
        hp = cfg.lom
        self.data, self.cfg, self.hp, self.device = data, cfg, hp, device
        self.rng = np.random.default_rng(seed)
        n, s, a = hp.num_components, OBS_DIM, ACT_DIM
        self.gmm = plain_mlp(s, (512, 512), n * (2 * a + 1)).to(device)
        self.gmm_opt = torch.optim.Adam(self.gmm.parameters(), lr=cfg.gmm_lr)
        self.q_nets = [plain_mlp(s + a, (256, 256), 1).to(device) for _ in range(hp.num_critics)]
        self.q_targets = [copy.deepcopy(q) for q in self.q_nets]
        self.q_opts = [torch.optim.Adam(q.parameters(), lr=cfg.critic_lr) for q in self.q_nets]
        if cfg.critic == "expectile":
            self.v_net = plain_mlp(s, (256, 256), 1).to(device)
            self.v_opt = torch.optim.Adam(self.v_net.parameters(), lr=cfg.critic_lr)
        self.mode_net = plain_mlp(s + n, (256, 256), 1).to(device)
        self.mode_opt = torch.optim.Adam(self.mode_net.parameters(), lr=cfg.mode_lr)
        self.actor = plain_mlp(s, (256, 256), a).to(device)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.steps = 0

    def batch(self, size: int, sampler: tuple[str, ...], *used: str) -> list[torch.Tensor]:
        """Like the authors' replay buffer: a numpy draw gathering every field of `sampler`, then the `used` ones
        standardised (states) in numpy and copied to the device."""
        idx = self.rng.integers(0, len(self.data.obs), size)
        arrays = {name: getattr(self.data, name)[idx] for name in sampler}
        out = []
        for name in used:
            x = arrays[name]
            if name in ("obs", "next_obs"):
                x = (x - self.data.obs_mean) / self.data.obs_std
            out.append(torch.as_tensor(x, dtype=torch.float32).to(self.device))
        return out

    def mixture(self, states: torch.Tensor):
        """Means, raw log-stds and weights of the components."""
        n, a = self.hp.num_components, ACT_DIM
        out = self.gmm(states)
        means = torch.tanh(out[:, : n * a].view(-1, n, a)).clamp(-0.9999, 0.9999)
        return means, out[:, n * a : 2 * n * a].view(-1, n, a), F.softmax(out[:, 2 * n * a :], dim=-1)

    def gmm_step(self) -> dict[str, float]:
        states, actions = self.batch(self.cfg.gmm_batch_size, SAMPLE, "obs", "act")
        means, log_stds, weights = self.mixture(states)
        stds = log_stds.clamp(-15, 0).exp()
        log_probs = torch.distributions.Normal(means, stds).log_prob(actions.unsqueeze(1).expand_as(means)).sum(-1)
        loss = -torch.logsumexp(log_probs + torch.log(weights + 1e-8), dim=-1).mean()
        self.gmm_opt.zero_grad()
        loss.backward()
        self.gmm_opt.step()
        return {"gmm/loss": loss.item(), "gmm/log_stds": log_stds.mean().item(),
                "gmm/weights_mean": weights.mean().item(), "gmm/weights_std": weights.std().item(),
                "gmm/log_probs_mean": log_probs.mean().item(), "gmm/log_probs_std": log_probs.std().item()}

    def train_step(self) -> dict[str, float]:
        info = self.sarsa_step() if self.cfg.critic == "sarsa" else self.expectile_step()
        info.update(self.mode_step())
        info.update(self.actor_step())
        if self.cfg.critic == "expectile" or self.steps % 2 == 0:
            for net, target in zip(self.q_nets, self.q_targets):
                for p, tp in zip(net.parameters(), target.parameters()):
                    tp.data.copy_(self.cfg.tau * p.data + (1 - self.cfg.tau) * tp.data)
        self.steps += 1
        return info

    def sarsa_step(self) -> dict[str, float]:
        s, a, r, s2, a2, d = self.batch(self.cfg.critic_batch_size, SAMPLE_WITH_NEXT_ACTION, "obs", "act", "rew",
                                        "next_obs", "next_act", "done")
        with torch.no_grad():
            noise = (self.hp.smooth_noise * torch.randn_like(a2)).clamp(-0.5, 0.5)
            a2 = (a2 + noise).clamp(-1, 1)
            next_q = torch.zeros(len(self.q_nets), len(s), 1, device=self.device)
            for k, target in enumerate(self.q_targets):
                next_q[k] = target(torch.cat([s2, a2], -1))
            y = r.unsqueeze(-1) + (1 - d.unsqueeze(-1)) * self.cfg.discount * next_q.min(0)[0]
        for net, opt in zip(self.q_nets, self.q_opts):
            q = net(torch.cat([s, a], -1))
            loss = ((y - q) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {"q/loss": loss.item(), "q/pred": q.mean().item(), "q/target": y.mean().item()}

    def expectile_step(self) -> dict[str, float]:
        s, a, r, s2, d = self.batch(self.cfg.critic_batch_size, SAMPLE_WITH_NEXT_ACTION, "obs", "act", "rew",
                                    "next_obs", "done")
        with torch.no_grad():
            q_t = torch.stack([t(torch.cat([s, a], -1)) for t in self.q_targets]).min(0)[0]
            y = r.unsqueeze(-1) + (1 - d.unsqueeze(-1)) * self.cfg.discount * self.v_net(s2)
        diff = q_t - self.v_net(s)
        v_loss = (torch.where(diff < 0, 1 - self.cfg.expectile, self.cfg.expectile) * diff**2).mean()
        self.v_opt.zero_grad()
        v_loss.backward()
        self.v_opt.step()
        for net, opt in zip(self.q_nets, self.q_opts):
            q_loss = ((y - net(torch.cat([s, a], -1))) ** 2).mean()
            opt.zero_grad()
            q_loss.backward()
            opt.step()
        return {"v/loss": v_loss.item(), "q/loss": q_loss.item()}

    def component_rows(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every state repeated once per component, with the component's one-hot code."""
        n = self.hp.num_components
        one_hot = torch.eye(n, device=self.device).unsqueeze(0).repeat(len(states), 1, 1).reshape(-1, n)
        return states.unsqueeze(1).repeat(1, n, 1).reshape(-1, states.shape[1]), one_hot

    def mode_step(self) -> dict[str, float]:
        (states,) = self.batch(self.cfg.mode_batch_size, SAMPLE_WITH_NEXT_ACTION, "obs")
        with torch.no_grad():
            rows, one_hot = self.component_rows(states)
            means, log_stds, _ = self.mixture(states)
            actions = torch.distributions.Normal(means, log_stds.clamp(-15, 0).exp()).sample()
            actions = actions.clamp(-1, 1).reshape(-1, ACT_DIM)
            target = self.q_nets[0](torch.cat([rows, actions], -1))
        loss = F.mse_loss(self.mode_net(torch.cat([rows, one_hot], -1)), target)
        self.mode_opt.zero_grad()
        loss.backward()
        self.mode_opt.step()
        return {"mode/loss": loss.item()}

    def actor_step(self) -> dict[str, float]:
        (states,) = self.batch(self.cfg.actor_batch_size, SAMPLE, "obs")
        rows, one_hot = self.component_rows(states)
        best = self.mode_net(torch.cat([rows, one_hot], -1)).reshape(len(states), -1).argmax(1)
        means, log_stds, _ = self.mixture(states)
        stds = log_stds.clamp(-15, 0).exp()
        pick = torch.arange(len(states), device=self.device)
        chosen = torch.distributions.Normal(means[pick, best], stds[pick, best]).sample().clamp(-1, 1)
        chosen = chosen + self.hp.ac_rand * torch.randn_like(chosen)
        pi = torch.tanh(self.actor(states))
        with torch.no_grad():
            advantage = self.q_nets[0](torch.cat([states, chosen], -1)) - self.q_nets[0](torch.cat([states, pi], -1))
            weights = torch.clip(torch.exp(self.hp.beta * advantage), 0, self.hp.weight_clip).squeeze(-1)
        loss = ((pi - chosen).pow(2).mean(1) * weights).mean()
        self.actor_opt.zero_grad()
        loss.backward()
        self.actor_opt.step()
        return {"actor/loss": loss.item(), "actor/weights": weights.mean().item()}


# -- ours -------------------------------------------------------------------------------------------------------------
class OurLoop:
    """Our agent driven the way the trainer drives it: loss tensors go into a device-side window, never read here."""

    def __init__(self, agent: LOMAgent, data: DeviceDataset):
        self.agent, self.data = agent, data
        self.window = LossWindow(1_000, data.device)
        self.steps = 0

    def gmm_step(self) -> None:
        self.steps += 1
        self.window.add(self.steps, self.agent.pretrain_step(self.data))

    def train_step(self) -> None:
        self.steps += 1
        self.window.add(self.steps, self.agent.train_step(self.data))


def lom_config(critic: str = "expectile", mode_net: str = "multihead", batch_scale: float = 1.0,
               **overrides) -> TrainConfig:
    # The authors' weight rule, Q(s, a*) − Q(s, π(s)), which ReferenceLOM implements too.
    cfg = TrainConfig(env_name=DATASET, critic=critic, mode_net=mode_net, weight_baseline="policy",
                      **overrides).resolve(DATASET)
    sizes = ("gmm_batch_size", "critic_batch_size", "mode_batch_size", "actor_batch_size")
    return dataclasses.replace(cfg, **{k: max(1, round(getattr(cfg, k) * batch_scale)) for k in sizes})


def our_agent(cfg: TrainConfig, data: DeviceDataset, behaviour: LOMAgent | None = None,
              capturable: bool = False) -> LOMAgent:
    """Our LOM agent; with `behaviour` (an agent past pre-training), past pre-training too, sharing its mixture and
    per-row caches. Timing needs no trained mixture: the work per step is the same."""
    agent = LOMAgent(OBS_DIM, ACT_DIM, cfg, capturable=capturable).to(data.device)
    if behaviour is not None:  # the caches are read-only from here on
        agent.gmm.load_state_dict(behaviour.gmm.state_dict())
        agent.gmm.requires_grad_(False)
        agent.behaviour_cache, agent.log_weight_cache = behaviour.behaviour_cache, behaviour.log_weight_cache
        agent.cache_offsets = behaviour.cache_offsets
    return agent


def pretrained_behaviour(cfg: TrainConfig, data: DeviceDataset) -> tuple[LOMAgent, float]:
    """An agent past pre-training (its mixture untrained), and the seconds its per-row caches took to build."""
    agent = our_agent(cfg, data)
    start = time.perf_counter()
    agent.finish_pretraining(data)
    synchronize(data.device)
    return agent, time.perf_counter() - start


# -- data -------------------------------------------------------------------------------------------------------------
def synthetic_data(rows: int, seed: int = 0) -> HostData:
    """Random data shaped like D4RL HalfCheetah: states off-centre and scaled so standardisation matters."""
    rng = np.random.default_rng(seed)
    obs = (rng.standard_normal((rows, OBS_DIM), dtype=np.float32) * 3.0 + 1.0).astype(np.float32)
    act = np.tanh(rng.standard_normal((rows, ACT_DIM), dtype=np.float32))
    done = (rng.random(rows) < 1e-3).astype(np.float32)
    return HostData(obs=obs, act=act, rew=rng.standard_normal(rows, dtype=np.float32), next_obs=np.roll(obs, -1, 0),
                    next_act=np.roll(act, -1, 0), done=done, obs_mean=obs.mean(0), obs_std=obs.std(0))


def device_data(host: HostData, device: torch.device) -> DeviceDataset:
    t = Transitions(observations=host.obs, actions=host.act, rewards=host.rew, next_observations=host.next_obs,
                    next_actions=host.next_act, terminals=host.done)
    return DeviceDataset(t, ObservationNormalizer.fit(host.obs, True), device)


# -- measuring --------------------------------------------------------------------------------------------------------
@dataclass
class Plan:
    warmup: int
    repeats: int
    gmm_steps: int
    lom_steps: int
    eval_repeats: int


QUICK = Plan(warmup=3, repeats=7, gmm_steps=20, lom_steps=10, eval_repeats=2)
FULL = Plan(warmup=5, repeats=9, gmm_steps=50, lom_steps=20, eval_repeats=3)
SCALING = Plan(warmup=2, repeats=3, gmm_steps=10, lom_steps=4, eval_repeats=0)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_rates(contenders: dict[str, Callable[[], object]], plan: Plan, steps: int,
                      device: torch.device) -> dict[str, float]:
    """Median steps/s of each contender; repeats alternate between contenders (and their order) so that a change in
    the machine's load hits all of them alike."""
    for step in contenders.values():
        for _ in range(plan.warmup):
            step()
    synchronize(device)
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(plan.repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            step = contenders[name]
            start = time.perf_counter()
            for _ in range(steps):
                step()
            synchronize(device)
            rates[name].append(steps / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


@dataclass
class Row:
    key: str
    label: str
    ours: float
    reference: float

    @property
    def ratio(self) -> float:
        return self.ours / self.reference

    def as_json(self) -> dict:
        return {"label": self.label, "ours": self.ours, "reference": self.reference, "ratio": self.ratio}


def compare(key: str, label: str, ours: Callable[[], object], reference: Callable[[], object], plan: Plan,
            steps: int, device: torch.device) -> Row:
    rates = interleaved_rates({"ours": ours, "reference": reference}, plan, steps, device)
    row = Row(key, label, rates["ours"], rates["reference"])
    print(f"  {label:<52} {row.ours:>9.1f} {row.reference:>11.1f} {row.ratio:>8.2f}x", flush=True)
    return row


def training_rows(host: HostData, data: DeviceDataset, device: torch.device, plan: Plan, ks: tuple[int, ...],
                  compile_too: bool) -> tuple[list[Row], float]:
    """Mixture pre-training and LOM steps/s, ours against the reference, and the one-off behaviour cache time."""
    ours = OurLoop(our_agent(lom_config(), data), data)
    reference = ReferenceLOM(host, lom_config(), device)
    rows = [compare("gmm", "mixture pre-training (N=10)", ours.gmm_step, reference.gmm_step, plan, plan.gmm_steps,
                    device)]
    behaviour, cache_s = pretrained_behaviour(lom_config(), data)

    cases = [("lom_expectile", "expectile", "multihead", 1), ("lom_sarsa", "sarsa", "multihead", 1)]
    cases += [(f"lom_sarsa_k{k}", "sarsa", "multihead", k) for k in ks if k != 1]
    cases.append(("lom_sarsa_onehot", "sarsa", "onehot", 1))
    for key, critic, mode_net, k in cases:
        cfg = lom_config(critic, mode_net, num_critics=k)
        ours = OurLoop(our_agent(cfg, data, behaviour), data)
        reference = ReferenceLOM(host, cfg, device)
        label = f"LOM step, {critic} critic K={k}, {mode_net} mode net"
        rows.append(compare(key, label, ours.train_step, reference.train_step, plan, plan.lom_steps, device))
    for key, critic in (("lom_expectile_captured", "expectile"), ("lom_sarsa_captured", "sarsa")):
        label = f"LOM step, {critic} critic K=1, captured (--cuda_graphs)"
        if device.type != "cuda":
            print(f"  {label:<52} {'not measured: needs CUDA':>31}", flush=True)
            continue
        agent = our_agent(lom_config(critic), data, behaviour, capturable=True)
        captured = CapturedStep(lambda agent=agent: agent.train_step(data), agent, strict=True)
        for _ in range(captured.warmup_left + 1):  # eager warm-up and the capture itself stay out of the timing
            captured()
        reference = ReferenceLOM(host, lom_config(critic), device)
        rows.append(compare(key, label, captured, reference.train_step, plan, plan.lom_steps, device))
    if compile_too:
        agent = our_agent(lom_config(), data, behaviour)
        agent.compile_networks()
        ours = OurLoop(agent, data)
        start = time.perf_counter()
        ours.train_step()
        synchronize(device)
        print(f"  (torch.compile: first step took {time.perf_counter() - start:.0f} s)")
        reference = ReferenceLOM(host, lom_config(), device)
        rows.append(compare("lom_expectile_compiled", "LOM step, expectile K=1, multihead, torch.compile",
                            ours.train_step, reference.train_step, plan, plan.lom_steps, device))
    return rows, cache_s


def evaluation_row(host: HostData, device: torch.device, repeats: int) -> Row:
    """Env steps/s of 10 episodes x 1000 steps: our vector env against one episode after another (both ours)."""
    spec = resolve_dataset(DATASET)
    actor = OneSeed(DeterministicActor(OBS_DIM, ACT_DIM)).to(device).eval()
    normalizer = ObservationNormalizer(torch.as_tensor(host.obs_mean), torch.as_tensor(host.obs_std)).to(device)
    env_steps = EVAL_EPISODES * spec.max_episode_steps
    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(repeats):
        for vectorized in (True, False) if r % 2 == 0 else (False, True):
            start = time.perf_counter()
            (evaluate if vectorized else evaluate_one_by_one)(actor, normalizer, spec, EVAL_EPISODES, seed=r,
                                                              device=device)
            times[vectorized].append(time.perf_counter() - start)
    vec, seq = statistics.median(times[True]), statistics.median(times[False])
    row = Row("evaluation", f"evaluation, {EVAL_EPISODES} x {spec.max_episode_steps} steps (env steps/s)",
              env_steps / vec, env_steps / seq)
    print(f"  {row.label:<52} {row.ours:>9.0f} {row.reference:>11.0f} {row.ratio:>8.2f}x"
          f"   ({vec:.1f} s vectorised vs {seq:.1f} s sequential)", flush=True)
    return row


@dataclass
class SeedRow:
    key: str
    label: str
    one_seed: float  # steps/s
    stacked: float  # steps/s of the 5-seed model; seed-steps/s are stacked x STACKED_SEEDS

    def as_json(self) -> dict:
        return {"label": self.label, "one_seed_steps_per_s": self.one_seed, "stacked_seeds": STACKED_SEEDS,
                "stacked_steps_per_s": self.stacked, "stacked_seed_steps_per_s": self.stacked * STACKED_SEEDS}


def seed_rows(data: DeviceDataset, device: torch.device, plan: Plan) -> list[SeedRow]:
    """Each agent's step with one seed against STACKED_SEEDS seeds in one stacked model, eager and (CUDA) captured."""
    rows = []
    captured_too = (False, True) if device.type == "cuda" else (False,)
    for agent_name in ("LOM", "IQL", "TD3BC"):
        for captured in captured_too:
            cfg = dataclasses.replace(lom_config(), agent=agent_name)
            steppers = {}
            for seeds in ((0,), tuple(range(STACKED_SEEDS))):
                agent = make_agent(cfg, OBS_DIM, ACT_DIM, capturable=captured, seeds=seeds).to(device)
                if agent.pretrain_steps:
                    agent.finish_pretraining(data)  # timing needs no trained mixture: the work per step is the same
                step = (CapturedStep(lambda agent=agent: agent.train_step(data), agent, strict=True) if captured
                        else lambda agent=agent: agent.train_step(data))
                for _ in range(getattr(step, "warmup_left", 0) + 1):  # eager warm-up and capture stay out
                    step()
                steppers[len(seeds)] = step
            rates = interleaved_rates({"one": steppers[1], "stacked": steppers[STACKED_SEEDS]}, plan,
                                      plan.lom_steps, device)
            how = "captured" if captured else "eager"
            row = SeedRow(f"seeds_{agent_name.lower()}_{how}", f"{agent_name} step, {how}", rates["one"],
                          rates["stacked"])
            print(f"  {row.label:<40} {row.one_seed:>9.1f} {row.stacked:>12.1f} {row.stacked * STACKED_SEEDS:>12.1f}"
                  f" {row.stacked * STACKED_SEEDS / row.one_seed:>8.2f}x", flush=True)
            rows.append(row)
    if device.type != "cuda":
        print(f"  {'captured (--cuda_graphs)':<40} {'not measured: needs CUDA':>31}", flush=True)
    return rows


def stacked_evaluation_seconds(host: HostData, device: torch.device, repeats: int) -> dict[str, float]:
    """Seconds of one evaluation, EVAL_EPISODES episodes per seed, for one seed and for STACKED_SEEDS at once."""
    spec = resolve_dataset(DATASET)
    normalizer = ObservationNormalizer(torch.as_tensor(host.obs_mean), torch.as_tensor(host.obs_std)).to(device)
    out = {}
    for seeds in (1, STACKED_SEEDS):
        actor = DeterministicActor(OBS_DIM, ACT_DIM, generators=[torch.Generator().manual_seed(s)
                                                                 for s in range(seeds)]).to(device).eval()
        times = []
        for r in range(max(1, repeats)):
            start = time.perf_counter()
            evaluate_seeds(actor, normalizer, spec, EVAL_EPISODES, [r * 100 + s for s in range(seeds)], device)
            times.append(time.perf_counter() - start)
        out[f"evaluation_s_{seeds}_seeds"] = statistics.median(times)
    print(f"  one evaluation ({EVAL_EPISODES} episodes per seed): {out['evaluation_s_1_seeds']:.1f} s for 1 seed, "
          f"{out[f'evaluation_s_{STACKED_SEEDS}_seeds']:.1f} s for {STACKED_SEEDS} seeds at once", flush=True)
    return out


def scaling_study(host: HostData, data: DeviceDataset, device: torch.device) -> dict:
    """Steps/s, ours and reference, against the batch size (all four scaled together) and the components N."""
    out: dict = {"batch_scale": [], "components": []}
    print("\nscaling with batch size (all four batch sizes times the factor; expectile critic, N=10):")
    behaviour, _ = pretrained_behaviour(lom_config(), data)
    for scale in (0.5, 1.0, 2.0, 4.0):
        cfg = lom_config(batch_scale=scale)
        gmm_ours, reference = OurLoop(our_agent(cfg, data), data), ReferenceLOM(host, cfg, device)
        gmm = compare("gmm", f"x{scale:g} mixture, batch {cfg.gmm_batch_size}", gmm_ours.gmm_step,
                      reference.gmm_step, SCALING, SCALING.gmm_steps, device)
        ours = OurLoop(our_agent(cfg, data, behaviour), data)
        batches = f"{cfg.critic_batch_size}/{cfg.mode_batch_size}/{cfg.actor_batch_size}"
        lom = compare("lom", f"x{scale:g} LOM, critic/mode/actor batches {batches}", ours.train_step,
                      reference.train_step, SCALING, SCALING.lom_steps, device)
        out["batch_scale"].append({"scale": scale, "gmm": gmm.as_json(), "lom_expectile": lom.as_json()})
    print("\nscaling with mixture components N (expectile critic, default batch sizes):")
    for n in (1, 5, 10, 20):
        cfg = lom_config(num_components=n)
        agent = our_agent(cfg, data)
        reference = ReferenceLOM(host, cfg, device)
        gmm = compare("gmm", f"mixture, N={n}", OurLoop(agent, data).gmm_step, reference.gmm_step, SCALING,
                      SCALING.gmm_steps, device)
        agent.finish_pretraining(data)
        lom = compare("lom", f"LOM, N={n}", OurLoop(agent, data).train_step, reference.train_step, SCALING,
                      SCALING.lom_steps, device)
        out["components"].append({"components": n, "gmm": gmm.as_json(), "lom_expectile": lom.as_json()})
        del agent
    return out


# -- report -----------------------------------------------------------------------------------------------------------
def peak_memory(device: torch.device) -> dict[str, float]:
    memory = {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if device.type == "cuda":
        memory["peak_cuda_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return memory


def machine(device: torch.device, threads: int) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "device": str(device), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def verdict(rows: list[Row]) -> list[str]:
    """The issue's targets; an empty list means every target is met."""
    by_key = {row.key: row for row in rows}
    misses = [f"{key} {by_key[key].ratio:.2f}x < {LOM_TARGET:g}x" for key in ("lom_expectile", "lom_sarsa")
              if by_key[key].ratio < LOM_TARGET]
    if by_key["gmm"].ratio < GMM_TARGET:
        misses.append(f"gmm {by_key['gmm'].ratio:.2f}x < {GMM_TARGET:g}x")
    return misses


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="benchmarks/throughput.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: 1, see above)")
    p.add_argument("--quick", action="store_true", help="fewer repeats and steps: under 5 minutes on 2 CPU cores")
    p.add_argument("--scaling", action="store_true", help="only the scaling study (batch size, components)")
    p.add_argument("--compile", action="store_true", help="also time our step under torch.compile")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads is not None and args.threads < 1:
        raise LOMError(f"--threads must be at least 1, got {args.threads}")
    warnings.filterwarnings("ignore", message=".*is out of date.*")
    device = select_device(args.device)
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    threads = args.threads or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    info = machine(device, threads)
    plan = QUICK if args.quick else FULL
    print(f"LOM throughput on synthetic {DATASET}-sized data ({TRANSITIONS:,} transitions, {OBS_DIM}-d states, "
          f"{ACT_DIM}-d actions) with its settings")
    chosen = "" if args.threads else " (the default)"
    print(f"machine: {info['cpu']}, {info['cpu_count']} cores, load average {load_start:.2f}; {device}, "
          f"threads: {threads}{chosen}, OMP_WAIT_POLICY={info['omp_wait_policy']}; torch {torch.__version__}")
    host = synthetic_data(TRANSITIONS)
    data = device_data(host, device)
    results: dict = {"machine": info, "load_average_start": load_start}
    if args.scaling:
        results["scaling"] = scaling_study(host, data, device)
        misses = []
    else:
        print(f"median of {plan.repeats} repeats (ours and reference interleaved) after {plan.warmup} warm-up steps; "
              f"{plan.gmm_steps} mixture / {plan.lom_steps} LOM steps per repeat")
        print(f"  {'':<52} {'ours':>9} {'reference':>11} {'ours/ref':>9}")
        rows, cache_s = training_rows(host, data, device, plan, ks=(1,) if args.quick else (1, 2),
                                      compile_too=args.compile)
        rows.append(evaluation_row(host, device, plan.eval_repeats))
        results.update({row.key: row.as_json() for row in rows})
        print(f"\nstacked seeds (train.py --seeds): {STACKED_SEEDS} seeds in one model against one seed")
        print(f"  {'':<40} {'1 seed':>9} {f'{STACKED_SEEDS} seeds':>12} {'seed-steps':>12} {'gain':>9}")
        results.update({row.key: row.as_json() for row in seed_rows(data, device, plan)})
        results.update(stacked_evaluation_seconds(host, device, plan.eval_repeats))
        results["behaviour_cache_build_s"] = cache_s
        print(f"one-off, ours only: the frozen mixture over all {TRANSITIONS:,} rows (behaviour cache) took "
              f"{cache_s:.1f} s")
        print("reference = the authors' loop structure re-implemented (numpy sampling and standardisation, a "
              "host-to-device copy per batch, one network per ensemble member, mixture per batch, one-hot mode "
              "net, .item() per logged value); its expectile critic is IQL-style in that structure (the authors "
              "have none). Evaluation: our vector env vs one episode after another.")
        misses = verdict(rows) if device.type == "cpu" else []
    results.update(peak_memory(device))
    results["load_average_end"] = os.getloadavg()[0]
    results["wall_s"] = time.perf_counter() - started
    memory = ", ".join(f"{k.removesuffix('_gib')} {v:.2f} GiB" for k, v in peak_memory(device).items())
    print(f"peak memory: {memory}; load average at the end {results['load_average_end']:.2f}; "
          f"wall time {results['wall_s']:.0f} s")
    if device.type != "cpu":
        print("no targets on a GPU: both loops are bound by kernel launches there (see the module docstring)")
    elif not args.scaling:
        print("PASS: LOM >= 3x the reference with both critics, mixture pre-training >= 1x" if not misses
              else f"FAIL: {'; '.join(misses)}")
    if args.json:
        write_json(args.json, results)
        print(f"figures written to {args.json}")
    return 1 if misses else 0


if __name__ == "__main__":
    run_cli(lambda: sys.exit(main()))
