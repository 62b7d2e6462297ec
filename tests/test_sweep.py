"""run_baselines.sh: scheduling, skipping finished runs, failures, dry runs — and a tiny real sweep with train.py.

The scheduling tests drive the script with a stand-in trainer (TRAIN_SCRIPT) that honours train.py's run-folder
contract in milliseconds; the end-to-end test uses the real train.py and is skipped only while it does not exist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from d4rl_server import serve_directory, write_tiny_d4rl_file

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "run_baselines.sh"
TRAIN_PY = ROOT / "train.py"

# Stand-in for train.py: same flags and run folders; appends one JSON line per training call to calls.jsonl.
FAKE_TRAINER = textwrap.dedent(
    """
    import argparse, json, os, sys, time
    from pathlib import Path

    parser = argparse.ArgumentParser()
    for flag in ("--env_name", "--agent", "--log_path", "--device", "--tag"):
        parser.add_argument(flag)
    for flag in ("--seed", "--training_steps", "--gmm_steps", "--eval_every", "--eval_episodes"):
        parser.add_argument(flag, type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--print_run_dir", action="store_true")
    args = parser.parse_args()
    run_dir = Path(args.log_path) / "LOM" / "default" / args.env_name / args.agent / f"seed{args.seed}"
    if args.print_run_dir:
        print(run_dir)
        sys.exit(0)
    start = time.time()
    if args.env_name.startswith("broken"):
        print("error: unknown dataset " + args.env_name + " — pick another", file=sys.stderr)
        sys.exit(2)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({"agent": args.agent, "dataset": args.env_name, "seed": args.seed}))
    time.sleep(float(os.environ.get("FAKE_SECONDS", "0")))
    score = 10.0 * (args.seed + 1)
    header = "step,wall_time_s,return_mean,return_std,normalized_score,normalized_score_std"
    (run_dir / "metrics.csv").write_text(header + "\\n" + f"5,0.1,1,0,{score},0\\n")
    (run_dir / "results.json").write_text(json.dumps({"final_normalized_score": score}))
    call = {"argv": sys.argv[1:], "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "omp": os.environ.get("OMP_NUM_THREADS"),
            "start": start, "end": time.time()}
    with open(Path(args.log_path) / "calls.jsonl", "a") as f:
        f.write(json.dumps(call) + "\\n")
    """
)


@pytest.fixture
def fake(tmp_path: Path) -> dict[str, str]:
    """Environment for a sweep with the stand-in trainer, on the CPU, logging into tmp_path/runs."""
    trainer = tmp_path / "fake_train.py"
    trainer.write_text(FAKE_TRAINER)
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "DRY_RUN", "DEVICE")}
    env.update(TRAIN_SCRIPT=str(trainer), PYTHON=sys.executable, LOG_PATH=str(tmp_path / "runs"), DEVICE="cpu",
               DATASETS="a-v0 b-v0", SEEDS="0 1", AGENTS="LOM BC", JOBS="2")
    return env


def sweep(env: dict[str, str], *args: str, **overrides: str) -> subprocess.CompletedProcess:
    # cwd beside LOG_PATH: mujoco drops MUJOCO_LOG.TXT into the working directory
    return subprocess.run(["bash", str(SCRIPT), *args], env={**env, **overrides}, cwd=Path(env["LOG_PATH"]).parent,
                          capture_output=True, text=True, timeout=600)


def calls(env: dict[str, str]) -> list[dict]:
    path = Path(env["LOG_PATH"]) / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def flag(call: dict, name: str) -> str | None:
    argv = call["argv"]
    return argv[argv.index(name) + 1] if name in argv else None


def test_sweep_trains_every_run_once_and_a_rerun_trains_nothing(fake):
    first = sweep(fake, "--eval_episodes", "3", STEPS="50")
    assert first.returncode == 0, first.stdout + first.stderr
    made = calls(fake)
    runs = sorted((flag(c, "--env_name"), flag(c, "--agent"), flag(c, "--seed")) for c in made)
    assert runs == sorted((d, a, s) for d in ("a-v0", "b-v0") for a in ("LOM", "BC") for s in ("0", "1"))
    for call in made:
        assert "--resume" in call["argv"] and flag(call, "--device") == "cpu" and call["omp"] == "1"
        assert flag(call, "--training_steps") == "50" and flag(call, "--eval_episodes") == "3"
        assert "--gmm_steps" not in call["argv"]  # unset: train.py's own default applies
    assert "summary: 8 done, 0 skipped (already finished), 0 failed, of 8" in first.stdout
    assert f"report: python -m lom.report {fake['LOG_PATH']}" in first.stdout
    assert len(list((Path(fake["LOG_PATH"]) / "logs").glob("*.log"))) == 8

    again = sweep(fake, "--eval_episodes", "3", STEPS="50")
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(calls(fake)) == 8
    assert "summary: 0 done, 8 skipped" in again.stdout and "nothing to train" in again.stdout

    report = subprocess.run([sys.executable, "-m", "lom.report", fake["LOG_PATH"]], cwd=ROOT, capture_output=True,
                            text=True)
    assert report.returncode == 0, report.stderr
    assert "| a-v0 | **15.0 ± 5.0** (n=2) | **15.0 ± 5.0** (n=2) |" in report.stdout


def test_interrupted_runs_are_resumed_and_finished_ones_skipped(fake):
    sweep(fake, SEEDS="0")
    unfinished = Path(fake["LOG_PATH"]) / "LOM" / "default" / "a-v0" / "BC" / "seed0"
    (unfinished / "results.json").unlink()
    result = sweep(fake, SEEDS="0")
    assert result.returncode == 0, result.stdout + result.stderr
    resumed = calls(fake)[4:]
    assert [(flag(c, "--env_name"), flag(c, "--agent")) for c in resumed] == [("a-v0", "BC")]
    assert "--resume" in resumed[0]["argv"]
    assert "summary: 1 done, 3 skipped" in result.stdout


def test_failed_run_is_reported_with_its_log_and_the_rest_still_run(fake):
    result = sweep(fake, DATASETS="broken-v0 a-v0", SEEDS="0")
    assert result.returncode == 1
    assert len(calls(fake)) == 2  # both a-v0 runs
    assert "summary: 2 done, 0 skipped (already finished), 2 failed" in result.stdout
    log = Path(fake["LOG_PATH"]) / "logs" / "broken-v0__LOM__seed0.log"
    assert f"broken-v0 LOM seed 0 — log: {log} — error: unknown dataset broken-v0" in result.stdout
    assert "unknown dataset" in log.read_text()


def test_jobs_go_round_robin_over_gpus_within_the_per_gpu_cap(fake, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    nvidia_smi = bin_dir / "nvidia-smi"
    nvidia_smi.write_text("#!/bin/sh\necho 'GPU 0: Fake A100 (UUID: GPU-1)'\necho 'GPU 1: Fake A100 (UUID: GPU-2)'\n")
    nvidia_smi.chmod(0o755)
    env = {**fake, "PATH": f"{bin_dir}{os.pathsep}{fake['PATH']}"}
    del env["DEVICE"]
    result = sweep(env, JOBS_PER_GPU="2", FAKE_SECONDS="0.5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 GPU(s) (0 1), 2 job(s) each" in result.stdout
    made = calls(env)
    assert {c["cuda"] for c in made} == {"0", "1"}
    assert all(flag(c, "--device") == "cuda" for c in made)
    for gpu in ("0", "1"):
        on_gpu = [c for c in made if c["cuda"] == gpu]
        busiest = max(sum(o["start"] < c["start"] < o["end"] for o in on_gpu) + 1 for c in on_gpu)
        assert busiest <= 2


def test_cuda_visible_devices_limits_the_gpus_used(fake):
    env = {k: v for k, v in fake.items() if k != "DEVICE"}
    result = sweep(env, CUDA_VISIBLE_DEVICES="3", JOBS_PER_GPU="1", SEEDS="0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {c["cuda"] for c in calls(env)} == {"3"}


def test_dry_run_prints_the_commands_that_would_run_and_trains_nothing(fake):
    sweep(fake, SEEDS="0", AGENTS="LOM")  # finishes a-v0/b-v0 LOM seed 0
    result = sweep(fake, "--tag", "x y", DRY_RUN="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(calls(fake)) == 2
    commands = [line for line in result.stdout.splitlines() if line.startswith("env ")]
    assert len(commands) == 6
    assert "dry run: 6 run(s) would train, 2 already finished" in result.stdout
    assert not any("--agent LOM --seed 0" in c for c in commands)
    # the printed commands are shell-quoted, runnable as they are
    assert all(c.endswith("--device cpu --tag x\\ y") and "OMP_NUM_THREADS=1" in c for c in commands)
    assert "--env_name b-v0 --agent BC --seed 1 " in "\n".join(commands)


@pytest.mark.parametrize(
    "overrides, message",
    [({"JOBS": "0"}, "JOBS=0 is not a positive integer"), ({"SEEDS": "one"}, "'one' is not a seed"),
     ({"DEVICE": "tpu"}, "DEVICE=tpu"), ({"TRAIN_SCRIPT": "/nonexistent/train.py"}, "cannot find")],
)
def test_bad_settings_are_one_line_errors(fake, overrides, message):
    result = sweep(fake, **overrides)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert calls(fake) == []


def fake_slurm_tools(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """PATH with an `sbatch` that must not be called (dry runs) and an `squeue` with an empty queue."""
    bin_dir = tmp_path / "slurm_bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", "echo 'sbatch called' >&2; exit 1"), ("squeue", "exit 0")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "LAUNCHER": "slurm"}


def test_slurm_dry_run_turns_the_variables_into_sbatch_options_and_one_task_per_run(fake, tmp_path):
    env = fake_slurm_tools(tmp_path, fake)
    sweep(env, SEEDS="0", AGENTS="LOM", LAUNCHER="local")  # finishes a-v0/b-v0 LOM seed 0: not submitted
    result = sweep(env, "--tag", "x y", DRY_RUN="1", PARTITION="gpu", ACCOUNT="lab", TIME_LIMIT="2:00:00",
                   CPUS_PER_TASK="4", GPUS_PER_TASK="1", MEM_PER_TASK="16G", MAX_RUNNING="3", JOB_NAME="fork",
                   EXTRA_SBATCH="--qos=low --exclusive", STOP_WARNING="300", DEVICE="auto")
    assert result.returncode == 0, result.stdout + result.stderr
    sbatch = next(line for line in result.stdout.splitlines() if line.startswith("sbatch "))
    for option in ("--job-name=fork", "--array=0-5%3", "--cpus-per-task=4", "--requeue", "--signal=B:USR1@300",
                   "--partition=gpu", "--account=lab", "--time=2:00:00", "--mem=16G", "--gres=gpu:1",
                   "--qos=low --exclusive"):
        assert f" {option} " in sbatch, option
    script = Path(sbatch.split()[-1])
    assert "dry run: 6 run(s) would be submitted" in result.stdout and "2 already finished" in result.stdout
    tasks = [line for line in script.read_text().splitlines() if re.match(r"\d\) run=", line)]
    assert len(tasks) == 6 and all("OMP_NUM_THREADS=4" in t and "--resume --device cuda --tag x\\ y )" in t
                                   for t in tasks)
    assert not any("--agent LOM --seed 0" in t for t in tasks)
    assert len(calls(fake)) == 2  # nothing trained by the dry run


@pytest.mark.parametrize("overrides, message", [
    ({"GPUS_PER_TASK": "one"}, "GPUS_PER_TASK=one is not a whole number"),
    ({"CPUS_PER_TASK": "0"}, "CPUS_PER_TASK=0 is not a positive integer"),
    ({"DEVICE": "cuda"}, "DEVICE=cuda needs GPUS_PER_TASK=1"),
    ({"LAUNCHER": "pbs"}, "LAUNCHER=pbs — use local or slurm"),
])
def test_bad_slurm_settings_are_one_line_errors(fake, tmp_path, overrides, message):
    result = sweep(fake_slurm_tools(tmp_path, fake), **overrides)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_slurm_launcher_without_sbatch_says_where_to_run_it(fake, tmp_path):
    bin_dir = tmp_path / "no_slurm_bin"  # only what the script runs before it looks for sbatch
    bin_dir.mkdir()
    for tool in ("bash", "nproc", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    result = sweep(fake, LAUNCHER="slurm", PATH=str(bin_dir))
    assert result.returncode == 2
    assert "sbatch not found — run LAUNCHER=slurm on a Slurm login node" in result.stderr


@pytest.mark.skipif(not TRAIN_PY.exists(), reason="needs train.py")
def test_tiny_real_sweep_end_to_end(tmp_path):
    """2 datasets × 2 seeds × 2 agents with the real train.py, a report, then a re-run that starts no training."""
    served = tmp_path / "served"
    write_tiny_d4rl_file(served / "hopper_medium-v2.hdf5", n_episodes=4, obs_dim=11, act_dim=3)
    log_path = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "DRY_RUN", "TRAIN_SCRIPT")}
    env.update(PYTHON=sys.executable, LOG_PATH=str(log_path), DEVICE="cpu", JOBS="2",
               DATASETS="multimodal-fork-v0 hopper-medium-v2", SEEDS="0 1", AGENTS="LOM BC",
               STEPS="4", GMM_STEPS="4", EVAL_EVERY="2", EVAL_EPISODES="1",
               LOM_CACHE_DIR=str(tmp_path / "cache"), D4RL_DATASET_DIR=str(tmp_path / "d4rl"))
    with serve_directory(served) as url:
        env["LOM_DATASET_MIRROR"] = url
        first = sweep(env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "summary: 8 done, 0 skipped (already finished), 0 failed, of 8" in first.stdout

        report = subprocess.run([sys.executable, "-m", "lom.report", str(log_path)], cwd=ROOT, capture_output=True,
                                text=True, timeout=300)
        assert report.returncode == 0, report.stderr
        rows = [line for line in report.stdout.splitlines() if line.startswith("| ")]
        assert rows[0] == "| dataset | LOM | BC |"
        assert [r.split(" | ")[0] for r in rows[1:]] == ["| hopper-medium-v2", "| multimodal-fork-v0"]
        assert all(r.count("(n=2)") == 2 for r in rows[1:])
        assert (log_path / "report" / "learning_curves.png").stat().st_size > 0
        status = subprocess.run([sys.executable, "-m", "lom.report", str(log_path), "--status"], cwd=ROOT,
                                capture_output=True, text=True, timeout=300)
        assert status.returncode == 0, status.stderr
        assert status.stdout.splitlines()[0].endswith("8 run(s) — 8 done, 0 running, 0 interrupted, 0 failed, "
                                                      "0 not started")

        starts = training_starts(log_path)
        assert sum(starts.values()) == 8
        again = sweep(env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "summary: 0 done, 8 skipped" in again.stdout and "nothing to train" in again.stdout
        assert training_starts(log_path) == starts


def training_starts(log_path: Path) -> dict[str, int]:
    """How many training commands each job log records (the script writes an '=== <time>: <command>' line each,
    and an '=== <time>: exit <status>' line when it ends)."""
    return {p.name: len(re.findall(r"^=== (?!.*: exit \d+$)", p.read_text(), re.M))
            for p in (log_path / "logs").glob("*.log")}
