"""train.py as a user runs it: bad flags, resume after SIGKILL, NaN stops, wandb offline, re-evaluation, D4RL mirror."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from d4rl_server import serve_directory, write_tiny_d4rl_file

REPO = Path(__file__).resolve().parents[1]
# Small batches keep each step a few milliseconds; the logic under test does not depend on their size.
SMALL = ["--gmm_batch_size", "64", "--critic_batch_size", "64", "--mode_batch_size", "64", "--actor_batch_size", "64"]
TINY = ["--training_steps", "40", "--gmm_steps", "20", "--eval_every", "20", "--eval_episodes", "2",
        "--log_every", "10", *SMALL]


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "OMP_NUM_THREADS": "1", "LOM_CACHE_DIR": str(tmp_path / "cache"),
            "D4RL_DATASET_DIR": str(tmp_path / "d4rl"), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}


def train(args, env, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600, **kwargs)


def run_dir_of(args, env) -> Path:
    out = train([*args, "--print_run_dir"], env)
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.strip().splitlines()[-1])


def metrics_without_time(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(f)]


@pytest.mark.parametrize("flags, expected", [
    (["--agent", "NOPE"], "--agent 'NOPE' is unknown"),
    (["--training_steps", "-5"], "--training_steps must be a positive whole number"),
    (["--env_name", "halfcheetah-medum-v2"], "halfcheetah-medium-v2"),
    (["--critic", "q"], "--critic 'q' is unknown"),
    (["--critic", "sarsa"], "--weight_baseline value compares with the expectile critic's V(s)"),
    (["--reward_scaling", "x"], "--reward_scaling 'x' is unknown"),
    (["--seed", "abc"], "invalid int value"),
])
def test_bad_flags_fail_with_one_line(flags, expected, env, tmp_path):
    out = train([*flags, "--log_path", str(tmp_path)], env)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], out.stderr


def test_run_writes_its_folder_and_resume_after_sigkill_matches_an_uninterrupted_run(env, tmp_path):
    args = ["--training_steps", "300", "--gmm_steps", "40", "--eval_every", "30", "--checkpoint_every", "20",
            "--eval_episodes", "3", "--log_every", "10", "--seed", "3", *SMALL]
    whole = [*args, "--log_path", str(tmp_path / "whole")]
    assert train(whole, env).returncode == 0
    whole_dir = run_dir_of(whole, env)
    assert {"config.json", "metrics.csv", "results.json", "checkpoint.pt", "gmm.pt"} <= {
        p.name for p in whole_dir.iterdir()}
    with open(whole_dir / "metrics.csv") as f:
        columns = next(csv.reader(f))
    assert {"actor/q_gap", "actor/weight_below_1e-3", "actor/weight_at_clip", "actor/picks_heaviest"} <= set(columns)

    cut = [*args, "--log_path", str(tmp_path / "cut")]
    cut_dir = run_dir_of(cut, env)
    proc = subprocess.Popen([sys.executable, "train.py", *cut], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        metrics = cut_dir / "metrics.csv"
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:  # header + two evaluations
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; give it more steps"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (cut_dir / "results.json").exists()

    resumed = train([*cut, "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from train step" in resumed.stdout
    a = json.loads((whole_dir / "results.json").read_text())
    b = json.loads((cut_dir / "results.json").read_text())
    for key in ("final_normalized_score", "best_normalized_score", "final_return", "steps"):
        assert a[key] == b[key], key
    assert metrics_without_time(whole_dir) == metrics_without_time(cut_dir)


def test_same_seed_same_numbers_and_print_run_dir_is_stable(env, tmp_path):
    args = [*TINY, "--agent", "TD3BC", "--seed", "5"]
    first = train([*args, "--log_path", str(tmp_path / "a")], env)
    second = train([*args, "--log_path", str(tmp_path / "b")], env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    dir_a = run_dir_of([*args, "--log_path", str(tmp_path / "a")], env)
    dir_b = run_dir_of([*args, "--log_path", str(tmp_path / "b")], env)
    assert dir_a.relative_to(tmp_path / "a") == dir_b.relative_to(tmp_path / "b")
    assert metrics_without_time(dir_a) == metrics_without_time(dir_b)


def test_nan_loss_stops_with_the_network_and_step_after_saving(env, tmp_path):
    out = train([*TINY, "--actor_lr", "1e30", "--log_path", str(tmp_path)], env)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "network 'actor'" in out.stderr and "NaN/inf at train step" in out.stderr, out.stderr
    run_dir = run_dir_of([*TINY, "--actor_lr", "1e30", "--log_path", str(tmp_path)], env)
    assert (run_dir / "checkpoint_nan.pt").is_file()


def test_wandb_offline_writes_a_run(env, tmp_path):
    pytest.importorskip("wandb")
    args = [*TINY, "--agent", "BC", "--enable_wandb", "1", "--log_path", str(tmp_path)]
    out = train(args, env)
    assert out.returncode == 0, out.stderr
    run_dir = run_dir_of(args, env)
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))


def test_gmm_path_skips_pretraining_and_evaluate_reloads_the_policy(env, tmp_path):
    first = [*TINY, "--log_path", str(tmp_path / "a")]
    assert train(first, env).returncode == 0
    gmm = run_dir_of(first, env) / "gmm.pt"
    second = [*TINY, "--log_path", str(tmp_path / "b"), "--gmm_path", str(gmm)]
    out = train(second, env)
    assert out.returncode == 0, out.stderr
    assert "behaviour mixture" not in out.stderr

    run_dir = run_dir_of(second, env)
    final = json.loads((run_dir / "results.json").read_text())
    evaluated = subprocess.run([sys.executable, "-m", "lom.evaluate", str(run_dir), "--episodes", "2"],
                               cwd=REPO, env=env, capture_output=True, text=True)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "normalised score" in evaluated.stdout
    assert final["steps"] == 40


def test_halfcheetah_from_a_mirror_downloads_trains_and_evaluates(env, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    write_tiny_d4rl_file(served / "halfcheetah_medium-v2.hdf5", n_episodes=6, max_episode_steps=40)
    with serve_directory(served) as url:
        out = train(["--env_name", "HalfCheetah-medium-v2", "--training_steps", "20", "--eval_every", "20",
                     "--eval_episodes", "1", "--gmm_steps", "10", "--log_path", str(tmp_path / "runs")],
                    {**env, "LOM_DATASET_MIRROR": url})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "d4rl" / "halfcheetah_medium-v2.hdf5").is_file()
    results = next((tmp_path / "runs").rglob("results.json"))
    assert json.loads(results.read_text())["dataset"] == "halfcheetah-medium-v2"
