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


RESUMABLE = ["--training_steps", "300", "--gmm_steps", "40", "--eval_every", "30", "--eval_episodes", "3",
             "--log_every", "10", "--seed", "3", *SMALL]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The folder of RESUMABLE trained in one go: the reference the interrupted runs must match."""
    folder = tmp_path_factory.mktemp("whole")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOM_CACHE_DIR": str(folder / "cache"), "PYTHONUNBUFFERED": "1"}
    whole = [*RESUMABLE, "--log_path", str(folder / "runs")]
    done = train(whole, env)
    assert done.returncode == 0, done.stderr
    return run_dir_of(whole, env)


def evaluated_twice(run_dir: Path) -> bool:
    metrics = run_dir / "metrics.csv"
    return metrics.is_file() and len(metrics.read_text().splitlines()) >= 3  # header + two evaluations


def start_and_interrupt(args, env, run_dir: Path, signum: int, ready=evaluated_twice,
                        launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Start train.py (through `launcher`, a script that runs it, if given), send `signum` once `ready(run_dir)` (by
    default once it has evaluated twice, well into training), wait for it to end."""
    proc = subprocess.Popen([sys.executable, *launcher, "train.py", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not ready(run_dir):
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be interrupted; give it more steps"
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.parametrize("signum, checkpoint_every, status", [
    (signal.SIGKILL, 20, -signal.SIGKILL),  # no warning: resumes from the last periodic checkpoint
    (signal.SIGTERM, 100_000, 75),  # Slurm's stop signal: saves where it is (no periodic checkpoint in this run)
    (signal.SIGINT, 100_000, 130),  # Ctrl-C: the same, with the shell's status for it
], ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_interrupted_run_resumes_to_the_numbers_of_an_uninterrupted_one(signum, checkpoint_every, status, uninterrupted,
                                                                        env, tmp_path):
    cut = [*RESUMABLE, "--checkpoint_every", str(checkpoint_every), "--log_path", str(tmp_path / "cut")]
    cut_dir = run_dir_of(cut, env)
    stopped = start_and_interrupt(cut, env, cut_dir, signum)
    assert stopped.returncode == status, stopped.stderr
    assert not (cut_dir / "results.json").exists()
    if signum != signal.SIGKILL:
        message = stopped.stderr.strip().splitlines()[-1]
        assert message.startswith(f"stopped by {signal.Signals(signum).name} at train step "), stopped.stderr
        assert "--resume" in message and "Traceback" not in stopped.stderr
    assert (cut_dir / "checkpoint.pt").is_file()

    resumed = train([*cut, "--resume"], env)  # the killed run's lock file is still there: it must not block this
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from train step" in resumed.stdout
    if signum != signal.SIGKILL:
        stopped_at = int(message.split(" at train step ")[1].split(";")[0])
        assert f"resumed from train step {stopped_at}\n" in resumed.stdout
    a = json.loads((uninterrupted / "results.json").read_text())
    b = json.loads((cut_dir / "results.json").read_text())
    for key in ("final_normalized_score", "best_normalized_score", "final_return", "steps"):
        assert a[key] == b[key], key
    assert metrics_without_time(uninterrupted) == metrics_without_time(cut_dir)  # losses too, to the bit
    assert {"config.json", "metrics.csv", "results.json", "checkpoint.pt", "gmm.pt"} <= {
        p.name for p in cut_dir.iterdir()}
    with open(cut_dir / "metrics.csv") as f:
        columns = next(csv.reader(f))
    assert {"actor/q_gap", "actor/weight_below_1e-3", "actor/weight_at_clip", "actor/picks_heaviest"} <= set(columns)


def test_a_second_train_py_on_a_running_runs_folder_is_refused_and_changes_nothing(env, tmp_path):
    args = [*RESUMABLE, "--log_path", str(tmp_path / "runs")]
    run_dir = run_dir_of(args, env)
    first = subprocess.Popen([sys.executable, "train.py", *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None and not (run_dir / "metrics.csv").is_file():
        time.sleep(0.05)
    assert first.poll() is None, "the first run ended too soon; give it more steps"
    first.send_signal(signal.SIGSTOP)  # frozen, so any change to its folder would come from the second process
    try:
        before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in run_dir.iterdir()}
        for extra in ([], ["--resume"]):  # without --resume a finished folder would be moved aside
            second = train([*args, *extra], env)
            assert second.returncode == 2
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1, second.stderr
            assert f"{run_dir.name}.lock is held by pid {first.pid} on " in lines[0]
            assert {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in run_dir.iterdir()} == before
        assert sorted(p.name for p in run_dir.parent.iterdir()) == [run_dir.name, f"{run_dir.name}.lock"]  # none moved
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=600) == 0
    assert (run_dir / "results.json").is_file()


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


def test_a_gmm_path_mixture_is_frozen_and_cached_as_after_pretraining(env, tmp_path, monkeypatch):
    first = [*TINY, "--log_path", str(tmp_path / "a")]
    assert train(first, env).returncode == 0
    monkeypatch.setenv("LOM_CACHE_DIR", env["LOM_CACHE_DIR"])
    from lom.config import TrainConfig
    from lom.training.trainer import Trainer

    trainer = Trainer(TrainConfig(training_steps=40, gmm_steps=20, log_path=str(tmp_path / "b"),
                                  gmm_path=str(run_dir_of(first, env) / "gmm.pt")))
    trainer.prepare(*trainer.load_checked_data())
    agent = trainer.agent
    assert trainer.phase == "train" and agent.behaviour_cache is not None
    assert not any(p.requires_grad for p in agent.gmm.parameters())


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
