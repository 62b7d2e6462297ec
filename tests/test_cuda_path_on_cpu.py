"""The CUDA path, executed on every CI run without a GPU: device selection with CUDA availability patched, captured
steps under the CUDA-graph emulator (tests/cuda_emulator.py), every agent's steps on the `meta` device, and resume
on a machine with another number of GPUs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from unittest import mock

import pytest
import torch
from cuda_emulator import CaptureRefused, EmulatedGraph, emulated_cuda_graphs
from test_cuda_graphs import small_dataset, step_every_phase
from test_train import REPO, SMALL, env, metrics_without_time, run_dir_of, start_and_interrupt  # noqa: F401

import lom.agents.lom
from lom.agents import make_agent
from lom.config import TrainConfig
from lom.data.batches import DeviceDataset
from lom.devices import select_device
from lom.errors import LOMError
from lom.training import checkpoint
from lom.training.captured_steps import CapturedStep
from lom.training.trainer import Trainer

EMULATOR = ["tests/cuda_emulator.py"]
AGENTS = {
    "LOM": dict(agent="LOM", critic="expectile", weight_baseline="value"),
    "LOM-sarsa": dict(agent="LOM", critic="sarsa", weight_baseline="policy"),
    "LOM-rms": dict(agent="LOM", critic="expectile", weight_baseline="value", weight_rule="rms"),
    "LOM-ess": dict(agent="LOM", critic="expectile", weight_baseline="value", weight_rule="ess"),
    # A run short enough that the actor's rate falls visibly over the replayed steps.
    "LOM-cosine": dict(agent="LOM", critic="expectile", weight_baseline="value", actor_lr_schedule="cosine",
                       training_steps=12),
    "IQL": dict(agent="IQL"),
    "TD3BC": dict(agent="TD3BC"),
    "BC": dict(agent="BC"),
    "MDN": dict(agent="MDN"),
}
# Enough steps past warm-up and capture to replay every phase of the update periods (2) several times.
STEPS = 10


def dataset(device, rows: int = 512) -> DeviceDataset:
    return small_dataset(torch.device(device), rows)


def small_agent(name: str, seeds, device="cpu"):
    cfg = TrainConfig(gmm_steps=STEPS, num_components=3, num_critics=2, hidden_width=16, gmm_hidden_width=16,
                      gmm_batch_size=32, critic_batch_size=32, mode_batch_size=16, actor_batch_size=32,
                      **AGENTS[name]).resolve("my_data", 3)
    return make_agent(cfg, 5, 3, capturable=True, seeds=seeds).to(device)


def train_steps(name: str, seeds, captured: bool) -> tuple:
    """Every phase of `name` for STEPS steps each: the losses of every step and the agent afterwards."""
    data, agent = dataset("cpu"), small_agent(name, seeds)
    torch.manual_seed(0)
    return step_every_phase(agent, data, STEPS, captured), agent


def assert_bitwise_equal(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_bitwise_equal(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_bitwise_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


# -- device selection -------------------------------------------------------------------------------------------
@pytest.fixture
def two_gpus():
    """A CPU build that believes it has two CUDA devices; torch.cuda.set_device's own checks still run."""
    chosen = []
    with mock.patch("torch.cuda.is_available", return_value=True), \
            mock.patch("torch.cuda.device_count", return_value=2), \
            mock.patch("torch.cuda.current_device", return_value=0), \
            mock.patch("torch._C._cuda_setDevice", side_effect=chosen.append, create=True):
        yield chosen


@pytest.mark.parametrize("flag, index", [("auto", 0), ("cuda", 0), ("cuda:1", 1)])
def test_every_cuda_device_flag_selects_an_indexed_device_and_reaches_the_first_steps_setup(flag, index, two_gpus,
                                                                                             tmp_path):
    trainer = Trainer(TrainConfig(device=flag, log_path=str(tmp_path), training_steps=4, gmm_steps=2, eval_every=2))
    assert trainer.device == torch.device("cuda", index)
    transitions, mixture = trainer.load_checked_data()
    # Past device selection, the first CUDA tensor is where a CPU build stops.
    with pytest.raises((AssertionError, RuntimeError), match="not compiled with CUDA"):
        trainer.prepare(transitions, mixture)
    assert two_gpus == [index]


@pytest.mark.parametrize("flag, message", [
    ("cuda:2", "this machine has 2 CUDA device(s), cuda:0 to cuda:1"),
    ("gpu", "--device 'gpu' is not a device: use auto, cpu, cuda or cuda:N"),
    ("mps", "--device 'mps' is not supported: use"),
])
def test_a_device_that_is_not_there_is_refused_in_one_line(flag, message, two_gpus):
    with pytest.raises(LOMError, match=message.replace("(", r"\(").replace(")", r"\)")):
        select_device(flag)


def test_without_cuda_auto_is_the_cpu_and_cuda_is_refused():
    with mock.patch("torch.cuda.is_available", return_value=False):
        assert select_device("auto") == torch.device("cpu")
        with pytest.raises(LOMError, match="PyTorch sees no CUDA GPU; use --device cpu"):
            select_device("cuda:0")


# -- resume on another machine ----------------------------------------------------------------------------------
def test_a_checkpoint_resumes_on_a_machine_with_more_fewer_or_no_gpus():
    saved_states = {0: torch.tensor([1], dtype=torch.uint8), 1: torch.tensor([2], dtype=torch.uint8)}
    restored = []
    with mock.patch("torch.cuda.get_rng_state", side_effect=lambda device: saved_states[device.index]), \
            mock.patch("torch.cuda.set_rng_state", side_effect=lambda state, device: restored.append((state, device))):
        state = checkpoint.capture_rng(torch.device("cuda", 1))  # saved on GPU 1 of a two-GPU machine
        assert torch.equal(state["cuda"], saved_states[1])
        checkpoint.restore_rng(state, torch.device("cuda", 0))  # resumed on a one-GPU machine
        assert restored[-1][1] == torch.device("cuda", 0) and torch.equal(restored[-1][0], saved_states[1])
        checkpoint.restore_rng(state, torch.device("cpu"))  # ... or on none
        assert len(restored) == 1
        cpu_state = checkpoint.capture_rng(torch.device("cpu"))
        assert "cuda" not in cpu_state
        checkpoint.restore_rng(cpu_state, torch.device("cuda", 0))  # a CPU checkpoint resumed on a GPU
        assert len(restored) == 1


# -- the emulator itself ----------------------------------------------------------------------------------------
def capture(step):
    graph = EmulatedGraph()
    with emulated_cuda_graphs(), torch.cuda.graph(graph):
        step()
    return graph


@pytest.mark.parametrize("step, refusal", [
    (lambda x: x.sum().item(), "reads a tensor's value on the host"),
    (lambda x: bool(x.sum() > 0), "reads a tensor's value on the host"),
    (lambda x: x.nonzero(), "output shape depends on the data"),
    (lambda x: x[x > 0], "output shape depends on the data"),
    (lambda x: torch.unique(x), "output shape depends on the data"),
    (lambda x: torch.randn(3, generator=torch.Generator().manual_seed(1)), "not registered with the graph"),
    (lambda x: torch.cuda.synchronize(), "synchronize"),
], ids=["item", "bool", "nonzero", "mask", "unique", "generator", "synchronize"])
def test_the_emulator_refuses_what_a_cuda_capture_refuses(step, refusal):
    x = torch.randn(8)
    with pytest.raises(CaptureRefused, match=refusal):
        capture(lambda: step(x))


def test_capture_changes_nothing_and_each_replay_redoes_the_step_with_fresh_draws():
    weight, generator = torch.zeros(3), torch.Generator().manual_seed(0)
    before = generator.get_state()
    graph = EmulatedGraph()
    graph.register_generator_state(generator)
    with emulated_cuda_graphs(), torch.cuda.graph(graph):
        noise = torch.randn(3, generator=generator)
        weight.add_(noise)
    assert torch.equal(weight, torch.zeros(3)) and torch.equal(generator.get_state(), before)
    expected = torch.Generator().manual_seed(0)
    total = torch.zeros(3)
    for _ in range(3):
        graph.replay()
        draw = torch.randn(3, generator=expected)
        total += draw
        assert torch.equal(noise, draw) and torch.equal(weight, total)


# -- captured steps = eager steps, every agent ------------------------------------------------------------------
@pytest.mark.parametrize("seeds", [(0,), (0, 1)], ids=["1seed", "2seeds"])
@pytest.mark.parametrize("name, cache", [("LOM", True), ("LOM", False), ("LOM-sarsa", True), ("LOM-rms", True),
                                         ("LOM-ess", True), ("LOM-cosine", True), ("IQL", True), ("TD3BC", True),
                                         ("BC", True)],
                         ids=["LOM", "LOM-uncached", "LOM-sarsa", "LOM-rms", "LOM-ess", "LOM-cosine", "IQL", "TD3BC",
                              "BC"])
def test_captured_steps_train_every_agent_bit_for_bit_as_eager_steps(name, cache, seeds, monkeypatch):
    if not cache:  # the frozen mixture evaluated at every step, as on data too large for the cache
        monkeypatch.setattr(lom.agents.lom, "BEHAVIOUR_CACHE_MAX_BYTES", 0)
    with emulated_cuda_graphs():
        eager_losses, eager = train_steps(name, seeds, captured=False)
        captured_losses, replayed = train_steps(name, seeds, captured=True)
    assert (eager.behaviour_cache is None) == (not cache) if name.startswith("LOM") else True
    assert_bitwise_equal(eager_losses, captured_losses, "losses")
    assert_bitwise_equal(eager.training_state(), replayed.training_state(), "state")  # counters are extra state
    assert_bitwise_equal(eager.rng.states(), replayed.rng.states(), "generators")


def test_a_failed_capture_warns_once_and_trains_eagerly_or_stops_in_one_line_with_cuda_graphs_1():
    data, agent = dataset("cpu"), small_agent("BC", (0,))
    settled = []

    def step_with_a_host_read():
        losses = agent.train_step(data)
        next(iter(losses.values())).sum().item()  # fine eagerly, refused by capture
        return losses

    with emulated_cuda_graphs():
        step = CapturedStep(step_with_a_host_read, agent, on_settled=settled.append)
        with pytest.warns(UserWarning, match=r"failed \(CaptureRefused: .*\); the run continues with eager steps"):
            losses = [step() for _ in range(6)]
        assert settled == [False] and step.eager and len(losses) == 6
        strict = CapturedStep(step_with_a_host_read, agent, strict=True)
        with pytest.raises(LOMError, match="train with eager steps with --cuda_graphs 0"):
            [strict() for _ in range(6)]


# -- train.py under emulation -----------------------------------------------------------------------------------
RUN = ["--training_steps", "60", "--gmm_steps", "30", "--eval_every", "20", "--eval_episodes", "2", "--log_every",
       "10", "--hidden_width", "32", "--gmm_hidden_width", "32", "--device", "cpu", *SMALL]


@pytest.fixture
def emulated(env):  # noqa: F811
    return {**env, "PYTHONPATH": str(REPO)}


def emulated_train(args, env):  # noqa: F811
    return subprocess.run([sys.executable, *EMULATOR, "train.py", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("agent", ["LOM", "TD3BC"])
def test_train_py_with_stacked_seeds_writes_the_same_metrics_captured_as_eager(agent, emulated, tmp_path):
    runs = {}
    for graphs in ("0", "1"):
        args = [*RUN, "--agent", agent, "--cuda_graphs", graphs, "--log_path", str(tmp_path / graphs)]
        done = emulated_train([*args, "--seeds", "0,1"], emulated)
        assert done.returncode == 0, done.stderr
        folders = [run_dir_of([*args, "--seed", str(s)], emulated) for s in (0, 1)]
        runs[graphs] = [metrics_without_time(d) for d in folders]
        for folder in folders:
            assert json.loads((folder / "config.json").read_text())["cuda_graphs_used"] is (graphs == "1")
    assert runs["0"] == runs["1"]


def test_a_captured_run_stopped_by_sigterm_and_resumed_equals_an_uninterrupted_one(emulated, tmp_path):
    args = [*RUN, "--agent", "TD3BC", "--training_steps", "400", "--cuda_graphs", "1"]
    whole = [*args, "--log_path", str(tmp_path / "whole")]
    assert emulated_train(whole, emulated).returncode == 0
    cut = [*args, "--log_path", str(tmp_path / "cut")]
    cut_dir = run_dir_of(cut, emulated)
    stopped = start_and_interrupt(cut, emulated, cut_dir, signal.SIGTERM, launcher=tuple(EMULATOR))
    assert stopped.returncode == 75, stopped.stderr
    resumed = emulated_train([*cut, "--resume"], emulated)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from train step" in resumed.stdout
    assert metrics_without_time(run_dir_of(whole, emulated)) == metrics_without_time(cut_dir)
    assert json.loads((cut_dir / "config.json").read_text())["cuda_graphs_used"] is True


# -- the meta device --------------------------------------------------------------------------------------------
class MetaGenerator(torch.Generator):
    """The meta device has no generators, and its random ops ignore the one they are given: a CPU one stands in."""

    def __new__(cls, device="cpu"):
        return super().__new__(cls, "cpu" if str(device) == "meta" else device)

    def __init__(self, device="cpu"):
        pass


@pytest.mark.parametrize("name", list(AGENTS))
def test_every_agents_steps_run_on_the_meta_device(name, monkeypatch):
    """Meta tensors have no values: a host read fails, and so does a tensor left on the CPU beside them."""
    monkeypatch.setattr(torch, "Generator", MetaGenerator)
    monkeypatch.setattr(sys.modules["torch.optim.adam"], "_get_capturable_supported_devices",
                        lambda supports_xla=True: ["meta"])
    monkeypatch.setattr(sys.modules["torch.optim.optimizer"], "_get_fused_kernels_supported_devices", lambda: ["meta"])
    data, agent = dataset("meta"), small_agent(name, (0, 1), device="meta")
    for _ in range(agent.pretrain_steps and 3):
        losses = agent.pretrain_step(data)
    agent.finish_pretraining(data)
    for _ in range(4):
        losses = agent.train_step(data)
    assert all(v.device.type == "meta" and v.shape == (2,) for v in losses.values())
    assert agent.act(torch.zeros(2, 4, 5, device="meta")).shape == (2, 4, 3)
