"""Several seeds in one process (`train.py --seeds`): each seed trains as it would beside any other seeds, writes the
run folder a run of it alone writes, and resumes after a SIGKILL to the numbers of an uninterrupted process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from explicit_config import explicit_config
from test_train import REPO, RESUMABLE, TINY, env, metrics_without_time, run_dir_of, start_and_interrupt, train  # noqa: F401

from lom.agents import make_agent
from lom.cli import parse_seeds
from lom.data import resolve_dataset
from lom.errors import LOMError
from lom.networks import OneSeed
from lom.seeds import slice_seed, stack_seeds
from lom.training.evaluation import evaluate, evaluate_seeds

RUN_FILES = {"config.json", "metrics.csv", "results.json", "checkpoint.pt"}


def run_dirs_of(args, env) -> list:
    out = train([*args, "--print_run_dir"], env)
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.strip().splitlines()]


@pytest.mark.parametrize("agent", ["LOM", "IQL"])
def test_a_seed_trains_the_same_whatever_seeds_share_its_process(agent, env, tmp_path):
    folders = {}
    for partner in (1, 2):
        args = [*TINY, "--agent", agent, "--seeds", f"0,{partner}", "--log_path", str(tmp_path / f"with{partner}")]
        done = train(args, env)
        assert done.returncode == 0, done.stderr
        folders[partner] = [Path(d) for d in run_dirs_of(args, env)]
    seed0_with1, seed0_with2 = folders[1][0], folders[2][0]
    assert seed0_with1.name == seed0_with2.name == "seed0"
    assert metrics_without_time(seed0_with1) == metrics_without_time(seed0_with2)  # every column, to the bit
    # ...while its partners, seeds 1 and 2, trained runs of their own
    assert metrics_without_time(folders[1][1]) != metrics_without_time(folders[2][1])


def test_each_stacked_seed_writes_an_ordinary_run_folder_that_reports_and_evaluates(env, tmp_path):
    args = [*TINY, "--seeds", "0-1", "--log_path", str(tmp_path / "runs")]
    done = train(args, env)
    assert done.returncode == 0, done.stderr
    dirs = [Path(d) for d in run_dirs_of(args, env)]
    assert [d.name for d in dirs] == ["seed0", "seed1"]
    single = [Path(d) for d in run_dirs_of([*TINY, "--seed", "1", "--log_path", str(tmp_path / "runs")], env)]
    assert single == dirs[1:]  # the folder --seed 1 would use
    for seed, run_dir in enumerate(dirs):
        assert RUN_FILES | {"gmm.pt"} <= {p.name for p in run_dir.iterdir()}
        config = json.loads((run_dir / "config.json").read_text())
        assert config["seed"] == seed and config["seeds_in_process"] == [0, 1]
        assert json.loads((run_dir / "results.json").read_text())["seed"] == seed
    report = subprocess.run([sys.executable, "-m", "lom.report", str(tmp_path / "runs")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert "(n=2)" in next(line for line in report.stdout.splitlines() if line.startswith("| multimodal-fork-v0"))
    # one seed's folder alone: lom.evaluate rebuilds its policy from its slice of the stacked model
    again = subprocess.run([sys.executable, "-m", "lom.evaluate", str(dirs[1]), "--episodes", "2"], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "seed 1: return" in again.stdout, again.stderr


def test_a_sigkilled_stacked_process_resumes_to_the_numbers_of_an_uninterrupted_one(env, tmp_path):
    at = RESUMABLE.index("--seed")
    resumable = RESUMABLE[:at] + RESUMABLE[at + 2:]
    whole = [*resumable, "--seeds", "3,5", "--log_path", str(tmp_path / "whole")]
    assert train(whole, env).returncode == 0
    cut = [*resumable, "--seeds", "3,5", "--checkpoint_every", "20", "--log_path", str(tmp_path / "cut")]
    cut_dirs = [Path(d) for d in run_dirs_of(cut, env)]
    stopped = start_and_interrupt(cut, env, cut_dirs[1], signal.SIGKILL)
    assert stopped.returncode == -signal.SIGKILL
    assert all((d / "checkpoint.pt").is_file() and not (d / "results.json").exists() for d in cut_dirs)
    resumed = train([*cut, "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from train step" in resumed.stdout
    for whole_dir, cut_dir in zip((Path(d) for d in run_dirs_of(whole, env)), cut_dirs):
        assert metrics_without_time(whole_dir) == metrics_without_time(cut_dir)  # scores and losses, to the bit
        a, b = (json.loads((d / "results.json").read_text()) for d in (whole_dir, cut_dir))
        assert (a["final_normalized_score"], a["steps"]) == (b["final_normalized_score"], b["steps"])


def test_seed_and_seeds_together_are_refused_in_one_line(env, tmp_path):
    out = train([*TINY, "--seed", "3", "--seeds", "0,1", "--log_path", str(tmp_path)], env)
    assert out.returncode == 2 and out.stderr == "error: --seed and --seeds name the seeds twice: give one of them\n"


def test_seeds_that_stopped_at_different_points_are_refused_in_one_line(env, tmp_path):
    log = ["--log_path", str(tmp_path)]
    assert train([*TINY, "--seed", "0", *log], env).returncode == 0
    out = train([*TINY, "--seeds", "0,1", "--resume", *log], env)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "these seeds stopped at different points (seed 0 at train step 40, seed 1 without " \
        "one); resume each in its own process" in lines[0], out.stderr


@pytest.mark.parametrize("text, seeds", [("3", (3,)), ("0,1,2", (0, 1, 2)), ("0-4", (0, 1, 2, 3, 4)),
                                         ("0-2,7", (0, 1, 2, 7)), (" 5 , 6 ", (5, 6))])
def test_seeds_are_lists_and_ranges(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "0,0", "0-2,1", "3-", "-1", "0,5-3"])
def test_bad_seeds_are_refused(text):
    with pytest.raises(LOMError, match="--seeds"):
        parse_seeds(text)


@pytest.mark.parametrize("agent", ["LOM", "IQL", "TD3BC", "BC"])
def test_a_seeds_initial_weights_are_its_own_and_a_slice_stacks_back_unchanged(agent):
    cfg = explicit_config(agent=agent)
    with_1, with_2 = (make_agent(cfg, 4, 2, seeds=(0, partner)).state_dict() for partner in (1, 2))
    alone = make_agent(cfg, 4, 2, seeds=(0,)).state_dict()
    tensors = [name for name, value in alone.items() if isinstance(value, torch.Tensor) and value.dim()]
    assert tensors and all(torch.equal(with_1[n][:1], alone[n]) and torch.equal(with_2[n][:1], alone[n])
                           for n in tensors)
    assert any(not torch.equal(with_1[n][1:], with_2[n][1:]) for n in tensors)
    agent_state = make_agent(cfg, 4, 2, seeds=(0, 1, 2)).training_state()
    restacked = stack_seeds([slice_seed(agent_state, i) for i in range(3)])
    for name, value in agent_state["networks"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(restacked["networks"][name], value), name


def test_stacked_policies_are_evaluated_each_on_the_episodes_a_run_of_its_seed_alone_plays():
    spec = resolve_dataset("hopper-medium-v2")  # untrained policies fall at different steps: returns differ
    cfg = explicit_config(agent="BC")
    agent = make_agent(cfg, 11, 3, seeds=(0, 1, 2))
    normalizer = torch.nn.Identity()
    together = evaluate_seeds(agent.act, normalizer, spec, 3, [10, 20, 30], torch.device("cpu"))
    for i, seed in enumerate((10, 20, 30)):
        one = make_agent(cfg, 11, 3, seeds=(i,))
        one.load_state_dict({k: v[i:i + 1] if isinstance(v, torch.Tensor) and v.dim() else v
                             for k, v in agent.state_dict().items()})
        alone = evaluate(OneSeed(one.actor), normalizer, spec, 3, seed, torch.device("cpu"))
        np.testing.assert_allclose(together[i].returns, alone.returns, rtol=1e-6)
    assert len({r.returns.round(3).tobytes() for r in together}) == 3


def test_a_seeds_stream_continues_from_its_checkpoint_and_a_state_from_another_device_reseeds_it():
    from lom.seeds import SeedStreams

    streams = SeedStreams((4, 9))
    streams.randint(100, 5)
    saved = streams.states()
    expected = streams.randint(100, 5)
    again = SeedStreams((4, 9))
    again.load_states(saved)
    assert torch.equal(again.randint(100, 5), expected)
    moved = [{**state, "device": "cuda"} for state in saved]  # as a GPU run saved it, resumed on this CPU
    first, second = SeedStreams((4, 9)), SeedStreams((4, 9))
    first.load_states(moved)
    second.load_states(moved)
    draws = first.randint(1000, 8)
    assert torch.equal(draws, second.randint(1000, 8)) and not torch.equal(draws, SeedStreams((4, 9)).randint(1000, 8))
    assert not torch.equal(draws[0], draws[1])


def test_each_stacked_seed_is_its_own_wandb_run(env, tmp_path):
    pytest.importorskip("wandb")
    args = [*TINY, "--agent", "BC", "--seeds", "0,1", "--enable_wandb", "1", "--log_path", str(tmp_path)]
    out = train(args, env)
    assert out.returncode == 0, out.stderr
    runs = [list((Path(d) / "wandb").glob("offline-run-*/run-*.wandb")) for d in run_dirs_of(args, env)]
    assert all(len(found) == 1 for found in runs)
    assert runs[0][0].name != runs[1][0].name  # two runs, each with its own id


@pytest.mark.parametrize("agent", ["LOM", "IQL", "TD3BC", "BC"])
def test_a_seed_alone_and_beside_another_take_the_same_steps_to_rounding(agent):
    from lom.data.batches import DeviceDataset, ObservationNormalizer
    from lom.data.types import Transitions

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(400, 4)).astype(np.float32)
    act = np.tanh(rng.normal(size=(400, 2))).astype(np.float32)
    transitions = Transitions(obs, act, rng.normal(size=400).astype(np.float32), np.roll(obs, -1, 0),
                              np.roll(act, -1, 0), (rng.random(400) < 0.05).astype(np.float32))
    data = DeviceDataset(transitions, ObservationNormalizer.fit(obs, True), torch.device("cpu"))
    trained = []
    for seeds in ((0,), (0, 1)):
        model = make_agent(explicit_config(agent=agent), 4, 2, seeds=seeds)
        if model.pretrain_steps:
            for _ in range(10):
                model.pretrain_step(data)
            model.finish_pretraining(data)
        for _ in range(10):
            model.train_step(data)
        trained.append(model.state_dict())
    for name, value in trained[0].items():
        if isinstance(value, torch.Tensor) and value.dim():
            torch.testing.assert_close(trained[1][name][:1], value, rtol=1e-4, atol=1e-5, msg=name)


def test_a_mixture_saved_before_the_seed_axis_is_refused_with_the_reason():
    from lom.training.sizes import check_mixture_fit

    old = {"gmm": {"net.0.weight": torch.zeros(512, 17), "net.0.bias": torch.zeros(512)}}
    with pytest.raises(LOMError, match="before networks had a seed axis"):
        check_mixture_fit(old, "old/gmm.pt", 17, 6, 10, 512)
