"""Captured training steps (--cuda_graphs, lom/training/captured_steps.py) and the loss window they report into.

The flag's refusals and the loss window run everywhere. The captured path itself needs a CUDA device: those tests
are skipped on a machine without one (this project's CI), and `benchmarks/gpu_check.sh` runs them on a lent GPU.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import TINY, env, metrics_without_time, run_dir_of, train  # noqa: F401  (env is a fixture)

from lom.agents import make_agent
from lom.agents.bc import BCAgent
from lom.config import TrainConfig
from lom.data.batches import DeviceDataset, ObservationNormalizer
from lom.data.types import Transitions
from lom.errors import LOMError
from lom.training.captured_steps import CapturedStep, use_cuda_graphs
from lom.training.loss_window import LossWindow, NonFiniteLoss

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "captured_steps.py"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="captured steps need a CUDA device")
# Captured and eager steps must agree this closely (relative) on every loss over the first steps.
AGREEMENT = 1e-4


# -- everywhere ------------------------------------------------------------------------------------------------
def test_cuda_graphs_1_without_cuda_is_refused_in_one_line(env, tmp_path):  # noqa: F811
    with pytest.raises(LOMError, match="--cuda_graphs 1 needs a CUDA device"):
        use_cuda_graphs("1", torch.device("cpu"))
    assert not use_cuda_graphs("auto", torch.device("cpu")) and not use_cuda_graphs("0", torch.device("cuda"))
    assert use_cuda_graphs("auto", torch.device("cuda"))
    out = train([*TINY, "--device", "cpu", "--cuda_graphs", "1", "--log_path", str(tmp_path)], env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: --cuda_graphs 1 needs a CUDA device, but this run trains on cpu: use --cuda_graphs auto or 0, or "
        "--device cuda"]
    out = train([*TINY, "--cuda_graphs", "yes", "--log_path", str(tmp_path)], env)
    assert out.returncode == 2 and "--cuda_graphs 'yes' is unknown: choose one of auto, 1, 0" in out.stderr


def test_auto_trains_eagerly_on_the_cpu_and_says_so(env, tmp_path):  # noqa: F811
    args = [*TINY, "--agent", "BC", "--device", "cpu", "--log_path", str(tmp_path)]
    assert train(args, env).returncode == 0
    config = json.loads((run_dir_of(args, env) / "config.json").read_text())
    assert config["cuda_graphs"] == "auto" and config["cuda_graphs_used"] is False


def test_a_loss_reported_every_other_step_is_averaged_over_the_steps_that_report_it():
    window = LossWindow(4, torch.device("cpu"))  # capacity 4: some flushes hold only the critic's rows
    for step in range(1, 12):
        losses = {"critic/q_loss": torch.tensor([float(step)])}  # one value per seed, (S,)
        if step % 2 == 0:
            losses["actor/loss"] = torch.tensor([10.0 * step])
        window.add(step, losses)
    means = window.take_means()  # one dict per seed
    assert means == [{"critic/q_loss": pytest.approx(6.0), "actor/loss": pytest.approx(60.0)}]  # steps 2, 4, …, 10
    assert window.take_means() == [{}]


def test_losses_land_in_their_own_columns_whatever_order_a_step_reports_them_in():
    window = LossWindow(8, torch.device("cpu"))
    window.add(1, {"a": torch.tensor([1.0])})
    window.add(2, {"b": torch.tensor([100.0]), "a": torch.tensor([3.0])})
    window.add(3, {"a": torch.tensor([5.0]), "b": torch.tensor([200.0])})
    assert window.take_means() == [{"a": pytest.approx(3.0), "b": pytest.approx(150.0)}]


def test_a_non_finite_loss_is_named_with_its_step_even_when_other_steps_skip_it():
    window = LossWindow(8, torch.device("cpu"))
    window.add(1, {"critic/q_loss": torch.tensor([1.0]), "actor/loss": torch.tensor([2.0])})
    window.add(2, {"critic/q_loss": torch.tensor([1.0])})
    window.add(3, {"critic/q_loss": torch.tensor([1.0]), "actor/loss": torch.tensor([math.inf])})
    with pytest.raises(NonFiniteLoss) as bad:
        window.flush()
    assert (bad.value.loss_name, bad.value.step, bad.value.seed_index) == ("actor/loss", 3, 0)

    # Two stacked seeds: each seed's means are over its own values, and a NaN in seed 1 alone is seed 1's.
    window = LossWindow(8, torch.device("cpu"), seeds=2)
    window.add(1, {"critic/q_loss": torch.tensor([1.0, 10.0]), "actor/loss": torch.tensor([4.0, 40.0])})
    window.add(2, {"critic/q_loss": torch.tensor([3.0, 30.0])})
    assert window.take_means() == [{"critic/q_loss": pytest.approx(2.0), "actor/loss": pytest.approx(4.0)},
                                   {"critic/q_loss": pytest.approx(20.0), "actor/loss": pytest.approx(40.0)}]
    window.add(3, {"critic/q_loss": torch.tensor([1.0, 1.0]), "actor/loss": torch.tensor([2.0, 2.0])})
    window.add(4, {"critic/q_loss": torch.tensor([1.0, 1.0])})
    window.add(5, {"critic/q_loss": torch.tensor([1.0, 1.0]), "actor/loss": torch.tensor([2.0, math.nan])})
    with pytest.raises(NonFiniteLoss) as bad:
        window.flush()
    assert (bad.value.loss_name, bad.value.step, bad.value.seed_index) == ("actor/loss", 5, 1)


def test_the_captured_steps_benchmark_measures_eager_rows_and_leaves_captured_ones_unmeasured_without_cuda(tmp_path):
    out = tmp_path / "captured.json"
    done = subprocess.run([sys.executable, str(BENCHMARK), "--quick", "--device", "cpu", "--transitions", "5000",
                           "--json", str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert set(figures["agents"]) == {"LOM", "LOM sarsa K=2", "IQL", "TD3BC", "BC"}
    for row in figures["agents"].values():
        assert row["eager_steps_per_s"] > 0 and row["captured_steps_per_s"] is None
    assert done.stdout.count("not measured") == 5


def gpu_check(tmp_path, python: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(BENCHMARK.with_name("gpu_check.sh"))], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": python})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_the_gpu_check_script_refuses_in_one_line_without_cuda(tmp_path):
    done = gpu_check(tmp_path, sys.executable)
    assert done.returncode == 3 and done.stderr.strip().splitlines() == [
        "benchmarks/gpu_check.sh: PyTorch sees no CUDA device here; run it on a machine with a GPU"]
    assert not (tmp_path / "out").exists()


def test_the_gpu_check_script_says_so_when_its_python_has_no_torch(tmp_path):
    python = tmp_path / "python"  # this interpreter without its site-packages, where torch lives
    python.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    python.chmod(0o755)
    done = gpu_check(tmp_path, str(python))
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"benchmarks/gpu_check.sh: '{python}' cannot import torch; install the requirements (README, Set-up) or set "
        "PYTHON"]


def test_every_step_of_the_gpu_check_has_a_time_limit_and_all_fit_in_8_minutes():
    script = BENCHMARK.with_name("gpu_check.sh").read_text()
    steps = [line.split() for line in script.splitlines() if line.startswith("step ")]
    assert len(steps) >= 8 and all(words[2].isdigit() for words in steps)
    assert sum(int(words[2]) for words in steps) <= 8 * 60
    names = {words[1] for words in steps}
    assert {"tests", "eager_seeds", "captured_seeds", "same_metrics", "no_sync", "captured_steps",
            "throughput"} <= names
    assert 'timeout --kill-after=10 "$limit" "$@"' in script


def test_same_metrics_accepts_runs_within_the_tolerance_and_names_each_difference(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARK.parent))
    from gpu_check import metric_differences

    header = "step,wall_time_s,return_mean,normalized_score,critic/q_loss\n"
    for root, loss, score in (("a", "0.50000", "40.0"), ("b", "0.50002", "40.0"), ("c", "0.6", "45.0")):
        folder = tmp_path / root / "LOM" / "seed0"
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text(header + f"20,{len(root)},0.4,{score},{loss}\n")
    assert metric_differences(tmp_path / "a", tmp_path / "b", 1e-4) == (1, [])
    runs, problems = metric_differences(tmp_path / "a", tmp_path / "c", 1e-4)
    assert runs == 1 and sorted(problems) == ["LOM/seed0 step 20: critic/q_loss 0.50000 against 0.6",
                                              "LOM/seed0 step 20: normalized_score 40.0 against 45.0"]
    with pytest.raises(LOMError, match="holds no metrics.csv"):
        metric_differences(tmp_path / "missing", tmp_path / "a", 1e-4)


# -- on a CUDA device ------------------------------------------------------------------------------------------
def small_dataset(device: torch.device, rows: int = 2048, obs_dim: int = 5, act_dim: int = 3) -> DeviceDataset:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(rows, obs_dim)).astype(np.float32)
    act = np.tanh(rng.normal(size=(rows, act_dim))).astype(np.float32)
    done = (rng.random(rows) < 0.01).astype(np.float32)
    transitions = Transitions(observations=obs, actions=act, rewards=rng.normal(size=rows).astype(np.float32),
                              next_observations=np.roll(obs, -1, 0), next_actions=np.roll(act, -1, 0), terminals=done)
    return DeviceDataset(transitions, ObservationNormalizer.fit(obs, True).to(device), device)


AGENT_FLAGS = {
    "LOM": dict(agent="LOM", critic="expectile", weight_baseline="value"),
    "LOM-sarsa": dict(agent="LOM", critic="sarsa", weight_baseline="policy"),
    "LOM-rms": dict(agent="LOM", critic="expectile", weight_baseline="value", weight_rule="rms"),  # a buffer updated
    "LOM-ess": dict(agent="LOM", critic="expectile", weight_baseline="value", weight_rule="ess"),  # a fixed bisection
    "LOM-cosine": dict(agent="LOM", critic="expectile", weight_baseline="value", actor_lr_schedule="cosine"),  # a
    # learning rate advanced on the device
    "IQL": dict(agent="IQL"),
    "TD3BC": dict(agent="TD3BC"),
    "BC": dict(agent="BC"),
    "MDN": dict(agent="MDN"),
}


def losses_over_steps(name: str, captured: bool, steps: int) -> list[dict[str, float]]:
    device = torch.device("cuda")
    cfg = TrainConfig(training_steps=1000, gmm_steps=steps, num_components=4, num_critics=2, hidden_width=64,
                      gmm_hidden_width=64, mode_batch_size=128, **AGENT_FLAGS[name]).resolve("my_data", 3)
    data = small_dataset(device)
    torch.manual_seed(0)
    # Both runs use capturable optimisers (their bias corrections are computed on the device, which rounds
    # differently from the host's): what differs is only whether the steps are replayed graphs.
    agent = make_agent(cfg, data.obs_dim, data.act_dim, capturable=True).to(device)
    return [{k: v.item() for k, v in row.items()} for row in step_every_phase(agent, data, steps, captured)]


def step_every_phase(agent, data: DeviceDataset, steps: int, captured: bool) -> list[dict[str, torch.Tensor]]:
    """Each phase of `agent` (its mixture pre-training, if it has one, then training) for `steps` steps, eagerly or
    as replayed graphs; every step's losses, copied."""
    rows = []
    for update in [agent.pretrain_step] * bool(agent.pretrain_steps) + [agent.train_step]:
        step = (CapturedStep(lambda update=update: update(data), agent, strict=True) if captured
                else lambda update=update: update(data))
        rows += [{k: v.clone() for k, v in step().items()} for _ in range(steps)]
        if captured:
            assert step.graphs and not step.eager
        if update == agent.pretrain_step:
            agent.finish_pretraining(data)
    return rows


@needs_cuda
@pytest.mark.parametrize("name", list(AGENT_FLAGS))
def test_captured_steps_give_the_losses_of_eager_steps(name):
    eager, captured = losses_over_steps(name, False, 200), losses_over_steps(name, True, 200)
    assert [list(row) for row in eager] == [list(row) for row in captured]
    for step, (a, b) in enumerate(zip(eager, captured)):
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=AGREEMENT, abs=1e-6), (name, step, key)


@needs_cuda
def test_two_replays_draw_different_noise_and_counters_advance():
    agent = make_agent(TrainConfig(agent="TD3BC").resolve("my_data", 3), 5, 3, capturable=True).cuda()
    data = small_dataset(torch.device("cuda"))
    noise = CapturedStep(lambda: {"noise": torch.randn((), device="cuda")}, agent)
    draws = [noise()["noise"].item() for _ in range(6)]  # 3 warm-up steps, then replays
    assert len(set(draws)) == len(draws)
    step = CapturedStep(lambda: agent.train_step(data), agent, strict=True)
    reported = [sorted(step()) for _ in range(9)]
    assert agent.updates == 9  # TD3+BC's counter, advanced by hand on replays
    assert reported[3:] == [["critic/q_loss"] if n % 2 else ["actor/loss", "critic/q_loss"] for n in range(4, 10)]


@needs_cuda
def test_replays_advance_every_stacked_seeds_own_generator():
    agent = make_agent(TrainConfig(agent="BC").resolve("my_data", 3), 5, 3, capturable=True, seeds=(0, 1)).cuda()
    shape = torch.zeros(2, 1, device="cuda")
    noise = CapturedStep(lambda: {"noise": agent.rng.normal_like(shape)[:, 0]}, agent)
    draws = [tuple(noise()["noise"].tolist()) for _ in range(6)]  # 3 warm-up steps, then replays
    assert len({d[0] for d in draws}) == len({d[1] for d in draws}) == len(draws)
    fresh = make_agent(TrainConfig(agent="BC").resolve("my_data", 3), 5, 3, seeds=(0, 1)).cuda()
    assert [tuple(fresh.rng.normal_like(shape)[:, 0].tolist()) for _ in range(6)] == draws  # the eager stream's


@needs_cuda
def test_captured_stacked_seeds_keep_each_seed_to_itself(env, tmp_path):  # noqa: F811
    seed0 = []
    for partner in (1, 2):
        common = [*TINY, "--device", "cuda", "--cuda_graphs", "1", "--log_path", str(tmp_path / str(partner))]
        out = train([*common, "--seeds", f"0,{partner}"], env)
        assert out.returncode == 0, out.stderr
        seed0.append(metrics_without_time(run_dir_of([*common, "--seed", "0"], env)))
    assert seed0[0] == seed0[1]


@needs_cuda
@pytest.mark.parametrize("agent_flags", [["--agent", "LOM"], ["--agent", "IQL"], ["--agent", "TD3BC"],
                                         ["--agent", "LOM", "--critic", "sarsa", "--weight_baseline", "policy"]],
                         ids=["LOM", "IQL", "TD3BC", "LOM-sarsa"])
def test_a_captured_run_killed_and_resumed_ends_with_the_scores_of_an_uninterrupted_one(  # noqa: F811
        agent_flags, env, tmp_path):
    from test_resume_agents import RUN, training_checkpointed, uninterrupted_and_resumed

    # Many steps after the kill point (step 60), so that even at GPU speed the run is still training when killed.
    flags = [*RUN, *agent_flags, "--training_steps", "1000", "--device", "cuda", "--cuda_graphs", "1"]
    whole, cut, progress, _ = uninterrupted_and_resumed(flags, env, tmp_path, training_checkpointed)
    assert progress["phase"] == "train"
    assert json.loads((cut / "config.json").read_text())["cuda_graphs_used"] is True
    scores = [[float(row["normalized_score"]) for row in metrics_without_time(d)] for d in (whole, cut)]
    assert len(scores[0]) == len(scores[1])
    assert scores[1] == pytest.approx(scores[0], rel=AGREEMENT, abs=1e-6)


@needs_cuda
def test_a_captured_step_that_goes_non_finite_is_named_with_its_network_and_step(env, tmp_path):  # noqa: F811
    out = train([*TINY, "--device", "cuda", "--cuda_graphs", "1", "--actor_lr", "1e30", "--log_path", str(tmp_path)],
                env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "network 'actor'" in out.stderr and "NaN/inf at train step" in out.stderr, out.stderr


def test_the_no_sync_check_runs_every_agent_and_reports_a_synchronisation(monkeypatch):
    """benchmarks/gpu_check.py no-sync on the CPU standing in for a CUDA device: every agent's steps run with the
    sync debug mode on, and a step that synchronises is reported with its step."""
    monkeypatch.syspath_prepend(str(BENCHMARK.parent))
    import gpu_check

    import lom.devices

    modes = []
    monkeypatch.setattr(lom.devices, "select_device", lambda name: torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "CPU standing in")
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)
    monkeypatch.setattr(sys.modules["torch.optim.adam"], "_get_capturable_supported_devices",
                        lambda supports_xla=True: ["cpu"])  # its agents have capturable optimisers, as on a GPU
    result = gpu_check.no_sync(steps=3)
    assert result["agents"] == {label: "no synchronisation" for label in gpu_check.NO_SYNC_AGENTS}
    assert modes == ["error", "default"] * len(gpu_check.NO_SYNC_AGENTS)

    ordinary, calls = BCAgent.train_step, []

    def synchronising_step(self, data):  # the watched steps synchronise, as a host read would on a GPU
        calls.append(1)
        if len(calls) > gpu_check.NO_SYNC_WARMUP:
            raise RuntimeError("called a synchronizing CUDA operation")
        return ordinary(self, data)

    monkeypatch.setattr(BCAgent, "train_step", synchronising_step)
    assert gpu_check.no_sync(steps=3)["agents"]["BC"] == (
        f"synchronised at step {gpu_check.NO_SYNC_WARMUP}: called a synchronizing CUDA operation")
