"""LAUNCHER=slurm against a real single-node Slurm (tests/slurm_cluster.py): a sweep, a re-run, a preempted task,
and a task that trains several seeds in one process.

Needs Debian's slurm-wlm and munge (`.ci/run` installs them). Without them the tests skip with a line saying how to
install them, unless LOM_REQUIRE_SLURM=1 (which `.ci/run` sets): then, as whenever Slurm is installed but cannot
start, they fail with the daemons' log lines.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from d4rl_server import serve_directory, write_tiny_d4rl_file
from slurm_cluster import REQUIRED_PROGRAMS, SlurmCluster, SlurmUnavailable, missing_programs
from test_sweep import FAKE_TRAINER

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "run_baselines.sh"
# Small batches keep each step a few milliseconds; what is tested does not depend on their size.
SMALL = ["--gmm_batch_size", "64", "--critic_batch_size", "64", "--mode_batch_size", "64", "--actor_batch_size", "64"]
SWEEP_TIMEOUT_S = 600
REQUIRE_ENV = "LOM_REQUIRE_SLURM"  # "1": a machine without Slurm fails these tests instead of skipping them


def skip_reason(environ: dict[str, str]) -> str | None:
    """Why the Slurm tests skip on this machine, or None when they run (Slurm installed, or required)."""
    missing = missing_programs(environ)
    if not missing or environ.get(REQUIRE_ENV) == "1":
        return None
    return (f"Slurm not installed ({', '.join(missing)} not found): apt-get install slurm-wlm munge, or run "
            f"bash .ci/run, to run these tests ({REQUIRE_ENV}=1 makes a missing Slurm fail them)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = skip_reason(dict(os.environ))
    if reason is not None:
        pytest.skip(reason)
    try:
        with SlurmCluster(tmp_path_factory.mktemp("slurm")) as running:
            yield running
    except SlurmUnavailable as exc:
        pytest.fail(f"Slurm did not start: {exc}", pytrace=False)


@pytest.fixture
def env(cluster, tmp_path) -> dict[str, str]:
    """The sweep's environment: the test cluster, CPU runs, caches in tmp_path (sbatch hands it to the tasks)."""
    environment = {k: v for k, v in cluster.env.items() if k not in ("CUDA_VISIBLE_DEVICES", "DRY_RUN", "DEVICE")}
    environment.update(LAUNCHER="slurm", PYTHON=sys.executable, LOG_PATH=str(tmp_path / "runs"), OMP_NUM_THREADS="1",
                       LOM_CACHE_DIR=str(tmp_path / "cache"), D4RL_DATASET_DIR=str(tmp_path / "d4rl"),
                       PYTHONUNBUFFERED="1")
    return environment


def sweep(env: dict[str, str], *args: str, **overrides: str) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", str(SCRIPT), *args], env={**env, **overrides}, cwd=Path(env["LOG_PATH"]).parent,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def submitted_job(output: str) -> str:
    match = re.search(r"as Slurm array job (\d+) ", output)
    assert match, output
    assert f"squeue -r -j {match.group(1)}" in output  # the command to watch it
    return match.group(1)


def tasks_in_queue(cluster: SlurmCluster, job: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-j", job, "-o", "%i %T"], env=cluster.env, capture_output=True,
                         text=True, timeout=30)
    return out.stdout.split("\n") if out.stdout.strip() else []


def wait_for_job(cluster: SlurmCluster, job: str, log_path: Path) -> None:
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    while tasks_in_queue(cluster, job):
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted((log_path / "logs").glob("*.log")))
            pytest.fail(f"job {job} still queued after {SWEEP_TIMEOUT_S} s\n{logs}\n{cluster.logs()}")
        time.sleep(1)


def status(log_path: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "lom.report", str(log_path), "--status"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_sweep_on_slurm_trains_every_run_and_a_rerun_submits_nothing(cluster, env, tmp_path):
    served = tmp_path / "served"
    write_tiny_d4rl_file(served / "hopper_medium-v2.hdf5", n_episodes=4, obs_dim=11, act_dim=3)
    log_path = Path(env["LOG_PATH"])
    settings = dict(DATASETS="multimodal-fork-v0 hopper-medium-v2", SEEDS="0 1", AGENTS="BC", STEPS="60",
                    EVAL_EVERY="30", EVAL_EPISODES="2")
    with serve_directory(served) as url:
        env["LOM_DATASET_MIRROR"] = url
        first = sweep(env, **settings)
        job = submitted_job(first.stdout)
        assert "submitted 4 run(s)" in first.stdout
        while_queued = sweep(env, **settings)  # the tasks are pending or running: none is submitted twice
        counts = re.search(r"nothing to submit: (\d) already finished, (\d) already queued", while_queued.stdout)
        assert counts and int(counts.group(1)) + int(counts.group(2)) == 4, while_queued.stdout
        wait_for_job(cluster, job, log_path)

    results = sorted(log_path.rglob("results.json"))
    assert len(results) == 4, status(log_path)
    assert {(r.parents[2].name, r.parent.name) for r in results} == {
        (d, s) for d in ("multimodal-fork-v0", "hopper-medium-v2") for s in ("seed0", "seed1")}
    assert all(json.loads(r.read_text())["steps"] == 60 for r in results)
    assert status(log_path).splitlines()[0].endswith("4 run(s) — 4 done, 0 running, 0 interrupted, 0 failed, "
                                                     "0 not started")
    report = subprocess.run([sys.executable, "-m", "lom.report", str(log_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert sum(line.count("(n=2)") for line in report.stdout.splitlines() if line.startswith("| ")) == 2

    again = sweep(env, **settings)
    assert "nothing to submit: 4 already finished, 0 already queued" in again.stdout
    assert "submitted" not in again.stdout


def test_a_preempted_task_requeues_itself_and_ends_with_the_uninterrupted_numbers(cluster, env, tmp_path):
    log_path = Path(env["LOG_PATH"])
    flags = ["--eval_every", "30", "--eval_episodes", "3", "--log_every", "10", "--checkpoint_every", "100000",
             *SMALL]
    settings = dict(DATASETS="multimodal-fork-v0", SEEDS="0", AGENTS="LOM", STEPS="300", GMM_STEPS="40")
    with open(tmp_path / "reference.log", "w") as reference_log:
        reference = subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), "--training_steps", "300", "--gmm_steps", "40", *flags,
             "--log_path", str(tmp_path / "reference")], cwd=tmp_path, env=env, stdout=reference_log,
            stderr=subprocess.STDOUT)
    job = submitted_job(sweep(env, *flags, **settings).stdout)
    run_dir = log_path / "LOM" / "default" / "multimodal-fork-v0" / "LOM" / "seed0"
    run_log = log_path / "logs" / "multimodal-fork-v0__LOM__seed0.log"

    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    metrics = run_dir / "metrics.csv"
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):  # two evaluations: mid-training
        assert time.monotonic() < deadline and tasks_in_queue(cluster, job), run_log.read_text()
        time.sleep(0.2)
    # What a preemption or the approaching time limit does: signal the task's shell and everything it started.
    subprocess.run(["scancel", "--full", "--signal=TERM", f"{job}_0"], env=cluster.env, check=True, timeout=30)
    while "requeued: " not in run_log.read_text():
        assert time.monotonic() < deadline and "not requeued" not in run_log.read_text(), run_log.read_text()
        time.sleep(0.2)
    first_attempt = run_log.read_text()
    stopped = re.search(r"stopped by SIGTERM at train step (\d+); checkpoint saved", first_attempt)
    assert stopped, first_attempt
    assert re.search(r"^=== .*: exit 75$", first_attempt, re.M)
    assert not (run_dir / "results.json").exists()

    wait_for_job(cluster, job, log_path)
    assert reference.wait(timeout=SWEEP_TIMEOUT_S) == 0, (tmp_path / "reference.log").read_text()
    log = run_log.read_text()
    assert f"(job {job}, restart 1)" in log and f"resumed from train step {stopped.group(1)}\n" in log, log
    resumed = json.loads((run_dir / "results.json").read_text())
    uninterrupted = json.loads(next((tmp_path / "reference").rglob("results.json")).read_text())
    for key in ("final_normalized_score", "best_normalized_score", "final_return", "steps"):
        assert resumed[key] == uninterrupted[key], key
    assert status(log_path).splitlines()[0].endswith("1 run(s) — 1 done, 0 running, 0 interrupted, 0 failed, "
                                                     "0 not started")


def test_one_task_trains_the_unfinished_seeds_of_a_pair_and_each_seed_keeps_its_log(cluster, env, tmp_path):
    """SEEDS_PER_PROCESS=all with tests/test_sweep.py's stand-in for a train.py that takes --seeds."""
    trainer = tmp_path / "fake_train.py"
    trainer.write_text(FAKE_TRAINER)
    log_path = Path(env["LOG_PATH"])
    env = {**env, "TRAIN_SCRIPT": str(trainer), "FAKE_SEEDS": "1", "DATASETS": "a-v0", "AGENTS": "BC"}
    sweep(env, SEEDS="1", LAUNCHER="local")  # seed 1 is finished before the sweep is submitted
    first = sweep(env, SEEDS="0 1 2", SEEDS_PER_PROCESS="all")
    job = submitted_job(first.stdout)
    assert "on Slurm, one array task per process, up to 3 seeds per process" in first.stdout
    assert "submitted 2 run(s)" in first.stdout and "(tasks 0-0; " in first.stdout, first.stdout
    assert "1 already finished, 0 already queued, 0 running elsewhere, of 3" in first.stdout
    wait_for_job(cluster, job, log_path)

    for seed in (0, 2):  # one train.py; its output, and the task's lines, in each of its seeds' logs
        log = (log_path / "logs" / f"a-v0__BC__seed{seed}.log").read_text()
        assert f"Slurm task {job}_0 (job " in log and "--seeds 0\\,2 " in log, log
        assert "trained BC seed 0\ntrained BC seed 2\n" in log
        assert re.search(r"^=== .*: exit 0\n\Z", log, re.M), log
    assert status(log_path).splitlines()[0].endswith("3 run(s) — 3 done, 0 running, 0 interrupted, 0 failed, "
                                                     "0 not started")
    again = sweep(env, SEEDS="0 1 2", SEEDS_PER_PROCESS="all")
    assert "nothing to submit: 3 already finished, 0 already queued" in again.stdout


def test_without_slurm_the_tests_skip_with_how_to_install_it_unless_it_is_required(tmp_path):
    no_slurm = {"PATH": str(tmp_path)}  # sbatch and scontrol live in /usr/bin, never searched here
    reason = skip_reason(no_slurm)
    assert reason is not None and "\n" not in reason
    assert "sbatch, scontrol not found" in reason and "apt-get install slurm-wlm munge" in reason
    assert skip_reason({**no_slurm, REQUIRE_ENV: "1"}) is None  # required: the fixture starts Slurm and fails
    for name in REQUIRED_PROGRAMS:
        program = tmp_path / name
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    assert skip_reason(no_slurm) is None  # installed: the tests run


def test_ci_requires_the_slurm_tests():
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"export {REQUIRE_ENV}=1" in ci
