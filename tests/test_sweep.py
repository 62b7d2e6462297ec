"""The sweep (lom.sweep, started by run_baselines.sh): its decisions as unit tests — which runs start, skip, resume
or are submitted, how seeds are grouped into processes, which settings are refused — then run_baselines.sh itself
with a stand-in trainer (TRAIN_SCRIPT) that honours train.py's run-folder contract in milliseconds, and a tiny real
sweep with train.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from d4rl_server import serve_directory, write_tiny_d4rl_file
from lom.run_folder import CHECKPOINT, EXIT_RECORD, RECORD_PREFIX, read_manifest
from lom.sweep import settings as sweep_settings
from lom.sweep.logs import bash_quote, exit_record, shell_status, start_record
from lom.training.run_lock import RunLock
from lom.sweep.plan import (Decision, Run, group_seeds, local_decision, slurm_decision,
                            sweep_runs, train_command, write_manifest)
from lom.sweep.settings import SweepError, SweepSettings, settings_from_env
from lom.sweep.slurm import TASKS, queued_runs

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "run_baselines.sh"
TRAIN_PY = ROOT / "train.py"
ENTRY_POINT_MAX_LINES = 60

# Stand-in for train.py: same flags and run folders (LOM with --preset paper trains in LOM-paper); with FAKE_SEEDS=1
# it also takes --seeds like a train.py that trains several seeds in one process. Each training call prints a line
# per seed and appends one JSON line to calls.jsonl.
FAKE_TRAINER = textwrap.dedent(
    """
    import argparse, json, os, sys, time
    from pathlib import Path

    parser = argparse.ArgumentParser()
    for flag in ("--env_name", "--agent", "--preset", "--log_path", "--device", "--tag"):
        parser.add_argument(flag)
    for flag in ("--seed", "--training_steps", "--gmm_steps", "--eval_every", "--eval_episodes"):
        parser.add_argument(flag, type=int)
    if os.environ.get("FAKE_SEEDS") == "1":
        parser.add_argument("--seeds")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--print_run_dir", action="store_true")
    args = parser.parse_args()
    agent = args.agent + ("-paper" if args.preset == "paper" else "")
    seeds = [int(s) for s in args.seeds.split(",")] if getattr(args, "seeds", None) else [args.seed]
    run_dirs = [Path(args.log_path) / "LOM" / "default" / args.env_name / agent / f"seed{s}" for s in seeds]
    if args.print_run_dir:
        print(run_dirs[0])
        sys.exit(0)
    start = time.time()
    if args.env_name.startswith("broken"):
        print("error: unknown dataset " + args.env_name + " — pick another", file=sys.stderr)
        sys.exit(2)
    for run_dir, seed in zip(run_dirs, seeds):
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps({"agent": args.agent, "dataset": args.env_name, "seed": seed}))
    time.sleep(float(os.environ.get("FAKE_SECONDS", "0")))
    for run_dir, seed in zip(run_dirs, seeds):
        score = 10.0 * (seed + 1)
        header = "step,wall_time_s,return_mean,return_std,normalized_score,normalized_score_std"
        (run_dir / "metrics.csv").write_text(header + "\\n" + f"5,0.1,1,0,{score},0\\n")
        (run_dir / "results.json").write_text(json.dumps({"final_normalized_score": score}))
        print(f"trained {agent} seed {seed}")
    call = {"argv": sys.argv[1:], "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "omp": os.environ.get("OMP_NUM_THREADS"),
            "start": start, "end": time.time()}
    with open(Path(args.log_path) / "calls.jsonl", "a") as f:
        f.write(json.dumps(call) + "\\n")
    """
)


# -- the decisions, in Python --------------------------------------------------------------------------------------

def settings(tmp_path: Path, **env: str) -> SweepSettings:
    """A CPU sweep over a-v0 b-v0 × seeds 0 1 2 × LOM BC with the stand-in trainer, logging into tmp_path/runs."""
    trainer = tmp_path / "fake_train.py"
    trainer.write_text(FAKE_TRAINER)
    base = dict(TRAIN_SCRIPT=str(trainer), PYTHON=sys.executable, LOG_PATH=str(tmp_path / "runs"), DEVICE="cpu",
                DATASETS="a-v0 b-v0", SEEDS="0 1 2", AGENTS="LOM BC", JOBS="2", PATH=os.environ["PATH"])
    return settings_from_env({**base, **env}, [])


def with_folders(runs: list[Run], log_path: str) -> list[Run]:
    """The runs with the folders train.py gives them (what `resolve_run_dirs` asks it for)."""
    return [replace(r, run_dir=Path(log_path) / "LOM" / "default" / r.dataset / r.agent / f"seed{r.seed}")
            for r in runs]


def leave(run: Run, *files: str) -> Run:
    """Put these files into the run's folder (results.json: finished; checkpoint.pt: interrupted)."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    for name in files:
        (run.run_dir / name).write_text("{}")
    return run


def pick(runs: list[Run], dataset: str, agent: str, seed: int) -> Run:
    return next(r for r in runs if (r.dataset, r.agent, r.seed) == (dataset, agent, seed))


def test_runs_are_seed_major_each_with_its_own_log(tmp_path):
    s = settings(tmp_path, AGENTS="LOM LOM-paper")
    runs = sweep_runs(s)
    assert [(r.number, r.seed, r.dataset, r.agent) for r in runs[:5]] == [
        (1, 0, "a-v0", "LOM"), (2, 0, "a-v0", "LOM-paper"), (3, 0, "b-v0", "LOM"), (4, 0, "b-v0", "LOM-paper"),
        (5, 1, "a-v0", "LOM")]
    assert runs[1].log == Path(s.log_path) / "logs" / "a-v0__LOM-paper__seed0.log"
    odd = sweep_runs(settings(tmp_path, DATASETS="minari:pen/human-v2"))[0]
    assert odd.log.name == "minari_pen_human-v2__LOM__seed0.log"


def test_finished_runs_are_skipped_interrupted_ones_resumed_and_the_rest_started(tmp_path):
    s = settings(tmp_path)
    runs = with_folders(sweep_runs(s), s.log_path)
    finished = leave(pick(runs, "a-v0", "LOM", 0), "results.json", CHECKPOINT)
    interrupted = leave(pick(runs, "a-v0", "LOM", 1), "config.json", CHECKPOINT)
    started_but_unsaved = leave(pick(runs, "a-v0", "LOM", 2), "config.json")
    assert local_decision(finished) is Decision.SKIP
    assert local_decision(interrupted) is Decision.RESUME
    assert local_decision(started_but_unsaved) is Decision.START
    assert local_decision(pick(runs, "b-v0", "BC", 0)) is Decision.START  # no folder yet


def test_slurm_submits_the_runs_neither_finished_nor_queued_nor_trained_elsewhere(tmp_path):
    s = settings(tmp_path)
    runs = with_folders(sweep_runs(s), s.log_path)
    finished = leave(pick(runs, "a-v0", "LOM", 0), "results.json")
    queued = pick(runs, "a-v0", "BC", 0)
    elsewhere = leave(pick(runs, "b-v0", "LOM", 0), CHECKPOINT)
    interrupted = leave(pick(runs, "b-v0", "BC", 0), CHECKPOINT)
    live_tasks = {queued.key}
    with RunLock(elsewhere.run_dir):  # a train.py outside the queue holds the folder
        assert slurm_decision(elsewhere, live_tasks) is Decision.ELSEWHERE
    assert slurm_decision(elsewhere, live_tasks) is Decision.SUBMIT  # its holder has ended
    assert slurm_decision(finished, live_tasks | {finished.key}) is Decision.SKIP
    assert slurm_decision(queued, live_tasks) is Decision.QUEUED
    assert slurm_decision(interrupted, live_tasks) is Decision.SUBMIT  # a task resumes it
    assert queued.key == "LOM/default/a-v0/BC/seed0"


def test_queued_runs_are_those_of_earlier_tasks_that_slurm_still_holds(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text("#!/bin/sh\nprintf '12_0\\n12_2\\n'\n")  # what `squeue -h -r -o %i` lists
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / TASKS).write_text("11_0\tLOM/default/a-v0/BC/seed0\n12_0\tLOM/default/a-v0/LOM/seed0\n"
                                  "12_1\tLOM/default/a-v0/LOM/seed1\n12_2\tLOM/default/b-v0/LOM/seed0\n")
    assert queued_runs(tmp_path) == {"LOM/default/a-v0/LOM/seed0", "LOM/default/b-v0/LOM/seed0"}
    (bin_dir / "squeue").write_text("#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller'\n"
                                    "exit 1\n")
    with pytest.raises(SweepError, match="^squeue failed: slurm_load_jobs error: .* — is the cluster reachable"):
        queued_runs(tmp_path)


def test_seed_groups_hold_only_unfinished_seeds_in_the_sweeps_order(tmp_path):
    s = settings(tmp_path, SEEDS="0 1 2 3 4")
    runs = with_folders(sweep_runs(s), s.log_path)
    for seed in (1, 3):
        leave(pick(runs, "a-v0", "LOM", seed), "results.json")
    leave(pick(runs, "a-v0", "LOM", 2), CHECKPOINT)
    to_train = [r for r in runs if local_decision(r) is not Decision.SKIP]
    groups = [(p.runs[0].dataset, p.runs[0].agent, [r.seed for r in p.runs]) for p in group_seeds(to_train, 2)]
    # seeds 1 and 3 of a-v0 LOM are in no process; seed 2, which resumes from its checkpoint, trains apart from the
    # seeds that start afresh (a process trains its seeds in step); each process takes the place of its first run
    assert groups == [("a-v0", "LOM", [0, 4]), ("a-v0", "BC", [0, 1]), ("b-v0", "LOM", [0, 1]), ("b-v0", "BC", [0, 1]),
                      ("a-v0", "LOM", [2]), ("a-v0", "BC", [2, 3]), ("b-v0", "LOM", [2, 3]), ("b-v0", "BC", [2, 3]),
                      ("a-v0", "BC", [4]), ("b-v0", "LOM", [4]), ("b-v0", "BC", [4])]
    # all seeds in one process: one process per dataset × agent and start/resume; one seed per process: the
    # sweep's own order
    assert [len(p.runs) for p in group_seeds(to_train, 5)] == [2, 5, 5, 5, 1]
    assert [p.runs[0] for p in group_seeds(to_train, 1)] == to_train
    first = group_seeds(to_train, 2)[0]
    assert [local_decision(r) for r in first.runs] == [Decision.START, Decision.START]
    command = train_command(s, first.runs, "cpu")
    assert command[command.index("--seeds") + 1] == "0,4" and "--seed" not in command and "--resume" in command
    assert first.name == "a-v0 LOM seeds 0,4"


def test_commands_per_agent_and_slot(tmp_path):
    s = settings(tmp_path, AGENTS="LOM-paper", STEPS="50", GMM_STEPS="0")
    run = sweep_runs(s)[0]
    cpu = train_command(s, [run], "cpu")
    assert cpu[:3] == ["env", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1"]
    assert cpu[3:] == [sys.executable, s.train_script, "--env_name", "a-v0", "--agent", "LOM", "--preset", "paper",
                       "--seed", "0", "--training_steps", "50", "--gmm_steps", "0", "--log_path", s.log_path,
                       "--resume", "--device", "cpu"]
    gpu = train_command(s, [run], "gpu:3")
    assert gpu[1] == "CUDA_VISIBLE_DEVICES=3" and gpu[-2:] == ["--device", "cuda"]
    bin_dir = fake_slurm_bin(tmp_path)
    slurm = settings(tmp_path, LAUNCHER="slurm", CPUS_PER_TASK="4", GPUS_PER_TASK="1", DEVICE="auto",
                     PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    on_slurm = train_command(slurm, [run], "slurm")
    assert on_slurm[1:3] == ["OMP_NUM_THREADS=4", "MKL_NUM_THREADS=4"] and on_slurm[-2:] == ["--device", "cuda"]
    assert sweep_settings.DEFAULT_AGENTS.split() == ["LOM", "LOM-paper", "IQL", "BC", "TD3BC"]


def test_each_agent_gets_only_its_own_baseline_flags(tmp_path):
    extra = ["--iql_beta", "5", "--td3bc_alpha=2", "--eval_episodes", "3"]
    s = settings_from_env({"TRAIN_SCRIPT": "train.py", "PYTHON": sys.executable, "LOG_PATH": str(tmp_path / "runs"),
                           "DEVICE": "cpu", "DATASETS": "a-v0", "SEEDS": "0", "AGENTS": "IQL TD3BC LOM-paper",
                           "JOBS": "1", "PATH": os.environ["PATH"]}, extra)
    tails = {run.agent: train_command(s, [run], "cpu")[-5:] for run in sweep_runs(s)}
    assert tails["IQL"] == ["cpu", "--iql_beta", "5", "--eval_episodes", "3"]
    assert tails["TD3BC"] == ["--device", "cpu", "--td3bc_alpha=2", "--eval_episodes", "3"]
    assert tails["LOM-paper"] == ["--resume", "--device", "cpu", "--eval_episodes", "3"]


def test_gpu_slots_interleave_the_gpus(tmp_path):
    s = settings(tmp_path, DEVICE="auto", CUDA_VISIBLE_DEVICES="0,1", JOBS_PER_GPU="2")
    assert s.slots == ("gpu:0", "gpu:1", "gpu:0", "gpu:1")
    assert s.where() == "2 GPU(s) (0 1), 2 job(s) each"
    assert settings(tmp_path, JOBS="3").slots == ("cpu",) * 3
    assert settings(tmp_path, DEVICE="cpu", CUDA_VISIBLE_DEVICES="0").slots == ("cpu", "cpu")


def test_one_seed_per_process_on_the_cpu_and_all_seeds_on_a_gpu_by_default(tmp_path):
    assert settings(tmp_path).seeds_per_process == 1
    assert settings(tmp_path, FAKE_SEEDS="1").seeds_per_process == 1
    assert settings(tmp_path, DEVICE="auto", CUDA_VISIBLE_DEVICES="0", FAKE_SEEDS="1").seeds_per_process == 3
    # A train script without --seeds trains one seed per process on a GPU too, unless SEEDS_PER_PROCESS asks more.
    assert settings(tmp_path, DEVICE="auto", CUDA_VISIBLE_DEVICES="0").seeds_per_process == 1
    assert (sweep_settings.CPU_SEEDS_PER_PROCESS, sweep_settings.GPU_SEEDS_PER_PROCESS) == ("1", "all")


def test_seeds_per_process_above_one_is_asked_of_the_train_script(tmp_path):
    with pytest.raises(SweepError, match=r"^SEEDS_PER_PROCESS=2: .*fake_train.py does not support --seeds yet"):
        settings(tmp_path, SEEDS_PER_PROCESS="2")
    assert settings(tmp_path, SEEDS_PER_PROCESS="1").seeds_per_process == 1  # no need to ask
    # A train script whose --help lists --seeds: accepted, "all" is every seed, more than all is all.
    assert settings(tmp_path, SEEDS_PER_PROCESS="2", FAKE_SEEDS="1").seeds_per_process == 2
    assert settings(tmp_path, SEEDS_PER_PROCESS="all", FAKE_SEEDS="1").seeds_per_process == 3
    assert settings(tmp_path, SEEDS_PER_PROCESS="7", FAKE_SEEDS="1").seeds_per_process == 3
    assert settings(tmp_path, SEEDS_PER_PROCESS="all", FAKE_SEEDS="1").where() == (
        "CPU, 2 job(s) at a time, up to 3 seeds per process")
    assert settings(tmp_path, SEEDS="4", SEEDS_PER_PROCESS="all").seeds_per_process == 1  # one seed: no --seeds


@pytest.mark.parametrize("overrides, message", [
    ({"JOBS": "0"}, "JOBS=0 is not a positive integer — set it to e.g. 1"),
    ({"JOBS_PER_GPU": "two"}, "JOBS_PER_GPU=two is not a positive integer"),
    ({"STEPS": "-5"}, "STEPS=-5 is not a positive integer"),
    ({"EVAL_EPISODES": "0"}, "EVAL_EPISODES=0 is not a positive integer"),
    ({"SEEDS": "one"}, "SEEDS: 'one' is not a seed — use e.g. SEEDS=\"0 1 2\""),
    ({"AGENTS": " \n "}, "DATASETS, SEEDS and AGENTS must each name at least one"),
    ({"DEVICE": "tpu"}, "DEVICE=tpu — use auto, cpu or cuda"),
    ({"LAUNCHER": "pbs"}, "LAUNCHER=pbs — use local or slurm"),
    ({"TRAIN_SCRIPT": "/nonexistent/train.py"}, "cannot find /nonexistent/train.py"),
    ({"SEEDS_PER_PROCESS": "two"}, "SEEDS_PER_PROCESS=two is neither a positive integer nor all"),
    ({"DEVICE": "cuda", "CUDA_VISIBLE_DEVICES": ""}, "DEVICE=cuda but no GPU found"),
])
def test_bad_settings_name_the_variable_and_the_fix(tmp_path, overrides, message):
    with pytest.raises(SweepError) as error:
        settings(tmp_path, **overrides)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_gmm_steps_may_be_zero(tmp_path):
    assert settings(tmp_path, GMM_STEPS="0").train_flags == ("--gmm_steps", "0")


def test_commands_are_quoted_as_bash_printf_q_quotes_them():
    words = ["plain", "a b", "x,y", "~home", "a~b", "k=~v", "#c", "a#b", "", "it's", "$HOME", "a\nb", "tab\tx",
             "é", "--tag=[1]", "p/q.r:s@t+u%"]
    bash = subprocess.run(["bash", "-c", 'printf "%q\\n" "$@"', "_", *words], capture_output=True, text=True)
    assert [bash_quote(w) for w in words] == bash.stdout.splitlines()


def test_log_records_are_the_lines_lom_report_status_reads():
    start = start_record(["env", "python", "train.py", "--tag", "x y"])
    assert start.startswith(RECORD_PREFIX) and start.endswith(": env python train.py --tag x\\ y\n")
    assert not EXIT_RECORD.match(start.rstrip("\n"))
    assert EXIT_RECORD.match(exit_record(75).rstrip("\n")).group(1) == "75"
    assert shell_status(-signal.SIGKILL) == 128 + signal.SIGKILL and shell_status(2) == 2


def test_the_manifest_lists_every_resolved_run_once_in_the_sweeps_order(tmp_path):
    s = settings(tmp_path)
    runs = with_folders(sweep_runs(s), s.log_path)
    unresolved = replace(runs[2], run_dir=None)  # train.py refused its flags: no folder to list
    Path(s.log_path).mkdir()
    write_manifest(s.log_path, [runs[0], runs[1], unresolved])
    write_manifest(s.log_path, runs)  # a re-run (or a wider sweep) adds only what is missing
    listed = read_manifest(Path(s.log_path))
    assert list(listed) == [r.key for r in runs]
    assert listed[runs[0].key] == "logs/a-v0__LOM__seed0.log"
    assert (Path(s.log_path) / "sweep.tsv").read_text().count("run\tlog") == 1


def test_the_entry_point_is_short():
    assert len(SCRIPT.read_text().splitlines()) <= ENTRY_POINT_MAX_LINES


# -- run_baselines.sh with the stand-in trainer ----------------------------------------------------------------------

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
    assert first.stdout.startswith("sweep: 8 run(s) = 2 dataset(s) × 2 seed(s) × 2 agent(s) on CPU, 2 job(s) at a "
                                   "time\n")
    assert "summary: 8 done, 0 skipped (already finished), 0 failed, of 8" in first.stdout
    assert re.search(r"^\[1/8\] start a-v0 LOM seed 0 on cpu \(log: .*/logs/a-v0__LOM__seed0\.log\)$", first.stdout,
                     re.M)
    assert re.search(r"^\[8/8\] done b-v0 BC seed 1 in 0m\ds$", first.stdout, re.M)
    assert first.stdout.endswith(f"report: python -m lom.report {fake['LOG_PATH']}\n")
    logs = sorted((Path(fake["LOG_PATH"]) / "logs").glob("*.log"))
    assert len(logs) == 8
    log = (Path(fake["LOG_PATH"]) / "logs" / "a-v0__BC__seed1.log").read_text().splitlines()
    assert log[0].startswith(RECORD_PREFIX) and log[0].endswith("--eval_episodes 3")
    assert log[1] == "trained BC seed 1" and EXIT_RECORD.match(log[2]).group(1) == "0"

    again = sweep(fake, "--eval_episodes", "3", STEPS="50")
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(calls(fake)) == 8
    assert "summary: 0 done, 8 skipped" in again.stdout and "nothing to train" in again.stdout
    assert "[4/8] skip b-v0 BC seed 0: already finished (" in again.stdout

    report = subprocess.run([sys.executable, "-m", "lom.report", fake["LOG_PATH"]], cwd=ROOT, capture_output=True,
                            text=True)
    assert report.returncode == 0, report.stderr
    a_row = r"^\| a-v0 \| \*\*15\.0\b.*\(n=2\) \| \*\*15\.0\b.*\(n=2\) \|$"  # both agents, both seeds
    assert re.search(a_row, report.stdout, re.M), report.stdout


def test_interrupted_runs_are_resumed_and_finished_ones_skipped(fake):
    sweep(fake, SEEDS="0")
    unfinished = Path(fake["LOG_PATH"]) / "LOM" / "default" / "a-v0" / "BC" / "seed0"
    (unfinished / "results.json").unlink()
    (unfinished / CHECKPOINT).write_text("saved")
    result = sweep(fake, SEEDS="0")
    assert result.returncode == 0, result.stdout + result.stderr
    resumed = calls(fake)[4:]
    assert [(flag(c, "--env_name"), flag(c, "--agent")) for c in resumed] == [("a-v0", "BC")]
    assert "--resume" in resumed[0]["argv"]
    assert "[2/4] resume a-v0 BC seed 0 on cpu (log: " in result.stdout
    assert "summary: 1 done, 3 skipped" in result.stdout


def test_failed_run_is_reported_with_its_log_and_the_rest_still_run(fake):
    result = sweep(fake, DATASETS="broken-v0 a-v0", SEEDS="0")
    assert result.returncode == 1
    assert len(calls(fake)) == 2  # both a-v0 runs
    assert "summary: 2 done, 0 skipped (already finished), 2 failed" in result.stdout
    log = Path(fake["LOG_PATH"]) / "logs" / "broken-v0__LOM__seed0.log"
    assert f"[1/4] FAILED broken-v0 LOM seed 0 (exit 2, log: {log})" in result.stdout
    assert f"broken-v0 LOM seed 0 — log: {log} — error: unknown dataset broken-v0" in result.stdout
    assert "unknown dataset" in log.read_text()


def test_a_run_train_py_refuses_is_failed_before_anything_trains(fake):
    result = sweep(fake, "--unknown_flag", SEEDS="0", AGENTS="BC")
    assert result.returncode == 1
    assert calls(fake) == []
    log = Path(fake["LOG_PATH"]) / "logs" / "a-v0__BC__seed0.log"
    assert f"[1/2] FAILED a-v0 BC seed 0: train.py --print_run_dir failed (log: {log})" in result.stdout
    assert "summary: 0 done, 0 skipped (already finished), 2 failed, of 2" in result.stdout
    assert "unrecognized arguments: --unknown_flag" in log.read_text()
    assert (Path(fake["LOG_PATH"]) / "sweep.tsv").read_text() == "run\tlog\n"  # no folder to list


def test_lom_paper_trains_lom_with_the_paper_preset_in_its_own_folders(fake):
    result = sweep(fake, SEEDS="0", DATASETS="a-v0", AGENTS="LOM LOM-paper")
    assert result.returncode == 0, result.stdout + result.stderr
    paper = next(c for c in calls(fake) if flag(c, "--preset") == "paper")
    assert flag(paper, "--agent") == "LOM"
    run_dirs = sorted(p.parent.relative_to(fake["LOG_PATH"]).as_posix()
                      for p in Path(fake["LOG_PATH"]).rglob("results.json"))
    assert run_dirs == ["LOM/default/a-v0/LOM-paper/seed0", "LOM/default/a-v0/LOM/seed0"]
    assert (Path(fake["LOG_PATH"]) / "logs" / "a-v0__LOM-paper__seed0.log").is_file()
    (Path(fake["LOG_PATH"]) / run_dirs[0] / "results.json").unlink()  # only LOM-paper's run is unfinished now
    again = sweep(fake, SEEDS="0", DATASETS="a-v0", AGENTS="LOM LOM-paper")
    assert "summary: 1 done, 1 skipped" in again.stdout and flag(calls(fake)[-1], "--preset") == "paper"


def test_seeds_per_process_trains_the_unfinished_seeds_together_and_each_seed_keeps_its_log(fake):
    fake = {**fake, "FAKE_SEEDS": "1", "SEEDS": "0 1 2", "DATASETS": "a-v0"}
    sweep(fake, SEEDS="1")  # seed 1 finished first
    result = sweep(fake, SEEDS_PER_PROCESS="all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "on CPU, 2 job(s) at a time, up to 3 seeds per process" in result.stdout
    grouped = calls(fake)[2:]
    assert sorted((flag(c, "--agent"), flag(c, "--seeds")) for c in grouped) == [("BC", "0,2"), ("LOM", "0,2")]
    assert all("--seed" not in c["argv"] and "--resume" in c["argv"] for c in grouped)
    assert "[1/6] start a-v0 LOM seeds 0,2 on cpu (logs: " in result.stdout
    assert "summary: 4 done, 2 skipped (already finished), 0 failed, of 6" in result.stdout
    for seed in (0, 2):  # one process, its output in each of its seeds' logs
        log = (Path(fake["LOG_PATH"]) / "logs" / f"a-v0__LOM__seed{seed}.log").read_text().splitlines()
        assert "--seeds 0\\,2" in log[0] and log[1:3] == ["trained LOM seed 0", "trained LOM seed 2"]
        assert EXIT_RECORD.match(log[-1])
    status = subprocess.run([sys.executable, "-m", "lom.report", fake["LOG_PATH"], "--status"], cwd=ROOT,
                            capture_output=True, text=True)
    assert status.stdout.splitlines()[0].endswith("6 run(s) — 6 done, 0 running, 0 interrupted, 0 failed, "
                                                  "0 not started")


def test_seeds_per_process_is_refused_while_the_train_script_lacks_seeds(fake):
    result = sweep(fake, SEEDS_PER_PROCESS="2")
    assert result.returncode == 2 and calls(fake) == []
    assert result.stderr == (f"error: SEEDS_PER_PROCESS=2: {fake['TRAIN_SCRIPT']} does not support "
                             "--seeds yet (one seed per process) — unset SEEDS_PER_PROCESS or set it to 1\n")


def test_a_stopped_sweep_stops_its_runs_and_says_how_to_resume(fake):
    log_path = Path(fake["LOG_PATH"])
    process = subprocess.Popen(["bash", str(SCRIPT)], env={**fake, "FAKE_SECONDS": "60"}, cwd=log_path.parent,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(list(log_path.rglob("config.json"))) < 2:  # both slots are training
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)  # bash exec'd python: the signal reaches the sweep itself
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130, out
    assert "summary: 0 done, 0 skipped (already finished), 0 failed, 2 interrupted, 6 not started, of 8" in out
    assert out.rstrip().endswith("interrupted: re-run the same command to resume where it stopped")
    log = (log_path / "logs" / "a-v0__LOM__seed0.log").read_text()
    assert EXIT_RECORD.match(log.splitlines()[-1]).group(1) == str(128 + signal.SIGTERM)
    again = sweep(fake)
    assert "summary: 8 done, 0 skipped" in again.stdout


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
    assert "report:" not in result.stdout


@pytest.mark.parametrize(
    "overrides, message",
    [({"JOBS": "0"}, "JOBS=0 is not a positive integer"), ({"SEEDS": "one"}, "'one' is not a seed"),
     ({"DEVICE": "tpu"}, "DEVICE=tpu"), ({"TRAIN_SCRIPT": "/nonexistent/train.py"}, "cannot find")],
)
def test_bad_settings_are_one_line_errors(fake, overrides, message):
    result = sweep(fake, **overrides)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert calls(fake) == []


def test_a_second_sweep_into_the_same_log_path_is_refused(fake):
    sweep(fake, SEEDS="0", AGENTS="BC")
    with open(Path(fake["LOG_PATH"]) / "logs" / ".sweep.lock") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = sweep(fake)
    assert result.returncode == 2
    assert f"another run_baselines.sh is already training into {fake['LOG_PATH']}" in result.stderr


def fake_slurm_bin(tmp_path: Path) -> Path:
    """A folder with an `sbatch` that must not be called (dry runs) and an `squeue` with an empty queue."""
    bin_dir = tmp_path / "slurm_bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("sbatch", "echo 'sbatch called' >&2; exit 1"), ("squeue", "exit 0")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def fake_slurm_tools(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    return {**env, "PATH": f"{fake_slurm_bin(tmp_path)}{os.pathsep}{env['PATH']}", "LAUNCHER": "slurm"}


def task_lines(script: Path) -> list[str]:
    """The `case` lines of a generated batch script, one per array task."""
    return [line for line in script.read_text().splitlines() if re.match(r"\d+\) runs=\(", line)]


def test_slurm_dry_run_turns_the_variables_into_sbatch_options_and_one_task_per_run(fake, tmp_path):
    env = fake_slurm_tools(tmp_path, fake)
    sweep(env, SEEDS="0", AGENTS="LOM", LAUNCHER="local")  # finishes a-v0/b-v0 LOM seed 0: not submitted
    result = sweep(env, "--tag", "x y", DRY_RUN="1", PARTITION="gpu", ACCOUNT="lab", TIME_LIMIT="2:00:00",
                   CPUS_PER_TASK="4", GPUS_PER_TASK="1", MEM_PER_TASK="16G", MAX_RUNNING="3", JOB_NAME="fork",
                   EXTRA_SBATCH="--qos=low --exclusive", STOP_WARNING="300", DEVICE="auto")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "on Slurm, one array task per run\n" in result.stdout
    sbatch = next(line for line in result.stdout.splitlines() if line.startswith("sbatch "))
    for option in ("--job-name=fork", "--array=0-5%3", "--cpus-per-task=4", "--requeue", "--signal=B:USR1@300",
                   "--partition=gpu", "--account=lab", "--time=2:00:00", "--mem=16G", "--gres=gpu:1",
                   "--qos=low --exclusive"):
        assert f" {option} " in sbatch, option
    script = Path(sbatch.split()[-1])
    assert "dry run: 6 run(s) would be submitted" in result.stdout and "2 already finished" in result.stdout
    tasks = task_lines(script)
    assert len(tasks) == 6 and all("OMP_NUM_THREADS=4" in t and "--resume --device cuda --tag x\\ y )" in t
                                   for t in tasks)
    assert tasks[0].startswith(f"0) runs=( {fake['LOG_PATH']}/LOM/default/a-v0/BC/seed0 ) logs=( ")
    assert not any("--agent LOM --seed 0" in t for t in tasks)
    assert len(calls(fake)) == 2  # nothing trained by the dry run
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_slurm_dry_run_submits_the_unfinished_seeds_of_a_pair_as_one_task(fake, tmp_path):
    env = {**fake_slurm_tools(tmp_path, fake), "FAKE_SEEDS": "1", "SEEDS": "0 1 2", "DATASETS": "a-v0"}
    sweep(env, SEEDS="1", LAUNCHER="local")
    result = sweep(env, DRY_RUN="1", SEEDS_PER_PROCESS="all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "on Slurm, one array task per process, up to 3 seeds per process" in result.stdout
    assert " --array=0-1 " in result.stdout
    assert "dry run: 4 run(s) would be submitted" in result.stdout and "2 already finished" in result.stdout
    sbatch = next(line for line in result.stdout.splitlines() if line.startswith("sbatch "))
    tasks = task_lines(Path(sbatch.split()[-1]))
    runs = f"{fake['LOG_PATH']}/LOM/default/a-v0/LOM/seed0 {fake['LOG_PATH']}/LOM/default/a-v0/LOM/seed2"
    assert tasks[0].startswith(f"0) runs=( {runs} ) logs=( ") and "--agent LOM --seeds 0\\,2 " in tasks[0]


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
    bin_dir = tmp_path / "no_slurm_bin"  # only what the entry point runs before lom.sweep looks for sbatch
    bin_dir.mkdir()
    for tool in ("bash", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    result = sweep(fake, LAUNCHER="slurm", PATH=str(bin_dir))
    assert result.returncode == 2
    assert "sbatch not found — run LAUNCHER=slurm on a Slurm login node" in result.stderr


# -- with the real train.py ------------------------------------------------------------------------------------------

def test_lom_paper_runs_live_in_train_pys_lom_paper_folders(tmp_path):
    """train.py itself names LOM-paper's folders, so a finished LOM-paper seed is skipped and the rest planned."""
    log_path = tmp_path / "runs"
    finished = log_path / "LOM" / "default" / "multimodal-fork-v0" / "LOM-paper" / "seed0"
    finished.mkdir(parents=True)
    (finished / "results.json").write_text("{}")
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "TRAIN_SCRIPT")}
    env.update(PYTHON=sys.executable, LOG_PATH=str(log_path), DEVICE="cpu", DRY_RUN="1", DATASETS="multimodal-fork-v0",
               SEEDS="0 1", AGENTS="LOM-paper")
    result = sweep(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"[1/2] skip multimodal-fork-v0 LOM-paper seed 0: already finished ({finished})" in result.stdout
    commands = [line for line in result.stdout.splitlines() if line.startswith("env ")]
    assert len(commands) == 1 and "--agent LOM --preset paper --seed 1 " in commands[0]


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
        table = first_table(report.stdout)
        assert table[0] == "| dataset | LOM | BC |"
        rows = {row.split(" | ")[0].removeprefix("| "): row for row in table[2:]}
        assert {"hopper-medium-v2", "multimodal-fork-v0"} <= set(rows)
        assert all(rows[d].count("(n=2)") == 2 for d in ("hopper-medium-v2", "multimodal-fork-v0"))
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


def test_real_sweep_with_all_seeds_in_one_process_per_agent(tmp_path):
    """SEEDS_PER_PROCESS=all with the real train.py: one stacked process per agent, every seed its own finished
    run, and a re-run trains nothing."""
    log_path = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "DRY_RUN", "TRAIN_SCRIPT")}
    env.update(PYTHON=sys.executable, LOG_PATH=str(log_path), DEVICE="cpu", JOBS="2", SEEDS_PER_PROCESS="all",
               DATASETS="multimodal-fork-v0", SEEDS="0 1 2", AGENTS="LOM IQL", STEPS="4", GMM_STEPS="4",
               EVAL_EVERY="2", EVAL_EPISODES="1", LOM_CACHE_DIR=str(tmp_path / "cache"))
    first = sweep(env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "up to 3 seeds per process" in first.stdout and "start multimodal-fork-v0 LOM seeds 0,1,2" in first.stdout
    assert "summary: 6 done, 0 skipped (already finished), 0 failed, of 6" in first.stdout
    assert len(list(log_path.rglob("results.json"))) == 6
    starts = training_starts(log_path)
    again = sweep(env)
    assert again.returncode == 0 and "summary: 0 done, 6 skipped" in again.stdout, again.stdout + again.stderr
    assert training_starts(log_path) == starts


def first_table(markdown: str) -> list[str]:
    """The lines of the first Markdown table in `markdown`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def training_starts(log_path: Path) -> dict[str, int]:
    """How many training commands each job log records (the sweep writes an '=== <time>: <command>' line each,
    and an '=== <time>: exit <status>' line when it ends)."""
    return {p.name: len(re.findall(r"^=== (?!.*: exit \d+$)", p.read_text(), re.M))
            for p in (log_path / "logs").glob("*.log")}


def test_resuming_seeds_share_a_process_only_when_their_checkpoints_are_at_the_same_point(tmp_path):
    s = settings(tmp_path, SEEDS="0 1 2 3 4", AGENTS="LOM", DATASETS="a-v0")
    runs = with_folders(sweep_runs(s), s.log_path)
    for seed, where in ((0, {"phase": "train", "step": 50}), (1, {"phase": "train", "step": 50}),
                        (2, {"phase": "train", "step": 90}), (3, None)):
        leave(pick(runs, "a-v0", "LOM", seed), CHECKPOINT)
        if where is not None:  # what train.py writes beside its checkpoints; seed 3's predates it
            (pick(runs, "a-v0", "LOM", seed).run_dir / "checkpoint.json").write_text(json.dumps(where))
    groups = [[r.seed for r in p.runs] for p in group_seeds(runs, 5)]
    assert groups == [[0, 1], [2], [3], [4]]
