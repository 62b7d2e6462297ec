"""run_baselines.sh's environment variables, read and checked once: `settings_from_env` gives a `SweepSettings`.

Every problem is a `SweepError` with one line naming the variable and the fix, raised before anything runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lom.config import D4RL_ENVS, PAPER_TABLE_KINDS
from lom.errors import LOMError

PROGRAM = "run_baselines.sh"
PAPER_DATASETS = tuple(f"{env}-{kind}-v2" for kind in PAPER_TABLE_KINDS for env in D4RL_ENVS)
DEFAULT_SEEDS = "0 1 2 3 4"
DEFAULT_AGENTS = "LOM LOM-paper IQL BC TD3BC"
DEFAULT_LOG_PATH = "runs"
DEFAULT_JOBS_PER_GPU = "2"
DEVICES = ("auto", "cpu", "cuda")
LAUNCHERS = ("local", "slurm")
# The train.py beside this package (run_baselines.sh's own folder).
DEFAULT_TRAIN_SCRIPT = str(Path(__file__).resolve().parents[2] / "train.py")
# Optional train.py flags: passed only when their variable is set, so that train.py's per-dataset defaults apply.
OPTIONAL_FLAGS = {"STEPS": "--training_steps", "GMM_STEPS": "--gmm_steps", "EVAL_EVERY": "--eval_every",
                  "EVAL_EPISODES": "--eval_episodes"}
# SEEDS_PER_PROCESS: how many seeds of one dataset and agent one train.py process trains (`--seeds 0,1,2`), or all.
ALL_SEEDS = "all"
# Its value when unset. One seed per process on the CPU, where stacking seeds gains nothing over one job per core.
CPU_SEEDS_PER_PROCESS = "1"
# On a GPU all seeds of a dataset and agent train as one stacked model (train.py --seeds, lom/seeds.py): the small
# networks leave the GPU idle, so S seeds take little more time than one.
GPU_SEEDS_PER_PROCESS = ALL_SEEDS
# What train.py's --help lists when it trains several seeds in one process.
SEEDS_FLAG = "--seeds"
# Slurm defaults (the other sbatch options are left to the cluster when unset).
DEFAULT_CPUS_PER_TASK = "1"
DEFAULT_GPUS_PER_TASK = "0"
DEFAULT_STOP_WARNING_S = "180"
DEFAULT_JOB_NAME = "lom-sweep"
NVIDIA_SMI_GPU = re.compile(r"^GPU (\d+):", re.M)


class SweepError(LOMError):
    """A setting or situation the user can fix; run_baselines.sh prints it as one line and exits EXIT_USAGE."""


@dataclass(frozen=True)
class SlurmSettings:
    """LAUNCHER=slurm's sbatch options; empty strings are options left to the cluster."""

    cpus_per_task: int
    gpus_per_task: int
    device: str  # the tasks' --device: cuda with GPUs (unless DEVICE=cpu), else cpu
    stop_warning_s: int
    max_running: int | None
    partition: str
    account: str
    time_limit: str
    mem_per_task: str
    job_name: str
    extra_sbatch: tuple[str, ...]


@dataclass(frozen=True)
class SweepSettings:
    """Everything a sweep needs to know, checked."""

    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    agents: tuple[str, ...]
    log_path: str
    python: str
    train_script: str
    train_flags: tuple[str, ...]  # the optional flags that were set (STEPS, ...)
    extra_args: tuple[str, ...]  # run_baselines.sh's own arguments, passed to every run
    dry_run: bool
    seeds_per_process: int
    cpu_jobs: int
    jobs_per_gpu: int
    gpus: tuple[str, ...]  # local runs: the GPU ids to spread jobs over (none: the CPU)
    slurm: SlurmSettings | None  # None: local runs

    @property
    def log_dir(self) -> Path:
        return Path(self.log_path) / "logs"

    @property
    def slots(self) -> tuple[str, ...]:
        """Local runs: one slot per concurrent job, "gpu:<id>" or "cpu"; GPU slots interleave the GPUs, so that
        consecutive jobs land on different GPUs."""
        if self.gpus:
            return tuple(f"gpu:{gpu}" for _ in range(self.jobs_per_gpu) for gpu in self.gpus)
        return ("cpu",) * self.cpu_jobs

    def where(self) -> str:
        """Where the runs train, for the sweep's first line."""
        grouped = f", up to {self.seeds_per_process} seeds per process" if self.seeds_per_process > 1 else ""
        if self.slurm is not None:
            task = "process" if self.seeds_per_process > 1 else "run"
            return f"Slurm, one array task per {task}{grouped}"
        if self.gpus:
            return f"{len(self.gpus)} GPU(s) ({' '.join(self.gpus)}), {self.jobs_per_gpu} job(s) each{grouped}"
        return f"CPU, {self.cpu_jobs} job(s) at a time{grouped}"


def count(name: str, value: str, zero_ok: bool = False) -> int:
    """`value` as a positive integer (or 0 when `zero_ok`), else a SweepError naming the variable."""
    if re.fullmatch(r"[1-9][0-9]*", value) or (zero_ok and value == "0"):
        return int(value)
    raise SweepError(f"{name}={value} is not a positive integer — set it to e.g. 1")


def cpu_count() -> int:
    """The CPU cores this process may use (what `nproc` prints)."""
    return len(os.sched_getaffinity(0))


def split_list(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def seeds_from_words(seeds: Sequence[str]) -> tuple[int, ...]:
    """SEEDS' words as seeds."""
    for seed in seeds:
        if not seed.isdigit():
            raise SweepError(f"SEEDS: '{seed}' is not a seed — use e.g. SEEDS=\"0 1 2\"")
    return tuple(int(seed) for seed in seeds)


def optional_flags(env: Mapping[str, str]) -> tuple[str, ...]:
    """The train.py flags of the optional variables that are set (GMM_STEPS may be 0, with --gmm_path)."""
    flags: list[str] = []
    for name, flag in OPTIONAL_FLAGS.items():
        if env.get(name):
            flags += [flag, str(count(name, env[name], zero_ok=name == "GMM_STEPS"))]
    return tuple(flags)


def sweep_lists(env: Mapping[str, str]) -> tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...]]:
    """DATASETS, SEEDS and AGENTS, each split on any whitespace (newlines included)."""
    datasets = split_list(env.get("DATASETS") or " ".join(PAPER_DATASETS))
    seeds = split_list(env.get("SEEDS") or DEFAULT_SEEDS)
    agents = split_list(env.get("AGENTS") or DEFAULT_AGENTS)
    if not (datasets and seeds and agents):
        raise SweepError("DATASETS, SEEDS and AGENTS must each name at least one")
    return datasets, seeds_from_words(seeds), agents


def seeds_in_a_process(env: Mapping[str, str], n_seeds: int, on_gpu: bool, python: str, train_script: str) -> int:
    """SEEDS_PER_PROCESS (unset: the CPU's or the GPU's default; ALL_SEEDS: all), at most the number of seeds;
    more than one only with a train script that takes --seeds (unset, a train script without it gets 1)."""
    asked = env.get("SEEDS_PER_PROCESS")
    value = asked or (GPU_SEEDS_PER_PROCESS if on_gpu else CPU_SEEDS_PER_PROCESS)
    if value != ALL_SEEDS and not re.fullmatch(r"[1-9][0-9]*", value):
        raise SweepError(f"SEEDS_PER_PROCESS={value} is neither a positive integer nor {ALL_SEEDS} — set it to e.g. 1")
    seeds = n_seeds if value == ALL_SEEDS else min(int(value), n_seeds)
    if seeds > 1 and not trains_several_seeds(python, train_script, env):
        if not asked:
            return 1
        raise SweepError(f"SEEDS_PER_PROCESS={value}: {train_script} does not support {SEEDS_FLAG} yet (one seed "
                         "per process) — unset SEEDS_PER_PROCESS or set it to 1")
    return seeds


def trains_several_seeds(python: str, train_script: str, env: Mapping[str, str]) -> bool:
    """Whether the train script accepts --seeds (asked, not assumed: its --help lists the flag)."""
    try:
        done = subprocess.run([python, train_script, "--help"], env=dict(env), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise SweepError(f"cannot run {python} {train_script} --help ({exc.strerror}) — set PYTHON") from None
    return done.returncode == 0 and SEEDS_FLAG in done.stdout


def local_gpus(device: str, env: Mapping[str, str]) -> tuple[str, ...]:
    """GPU ids to spread jobs over: the ones CUDA_VISIBLE_DEVICES allows, else every GPU `nvidia-smi -L` lists."""
    if device == "cpu":
        return ()
    if "CUDA_VISIBLE_DEVICES" in env:
        return tuple(gpu for gpu in env["CUDA_VISIBLE_DEVICES"].split(",") if gpu)
    if shutil.which("nvidia-smi", path=env.get("PATH")) is None:
        return ()
    listed = subprocess.run(["nvidia-smi", "-L"], env=dict(env), capture_output=True, text=True)
    return tuple(NVIDIA_SMI_GPU.findall(listed.stdout))


def slurm_settings(env: Mapping[str, str], device: str) -> SlurmSettings:
    """LAUNCHER=slurm's variables, checked, and the Slurm tools found."""
    cpus = count("CPUS_PER_TASK", env.get("CPUS_PER_TASK") or DEFAULT_CPUS_PER_TASK)
    stop_warning = count("STOP_WARNING", env.get("STOP_WARNING") or DEFAULT_STOP_WARNING_S)
    max_running = count("MAX_RUNNING", env["MAX_RUNNING"]) if env.get("MAX_RUNNING") else None
    gpus = env.get("GPUS_PER_TASK") or DEFAULT_GPUS_PER_TASK
    if not gpus.isdigit():
        raise SweepError(f"GPUS_PER_TASK={gpus} is not a whole number — set it to e.g. 1")
    if device == "cuda" and int(gpus) == 0:
        raise SweepError("DEVICE=cuda needs GPUS_PER_TASK=1 (or more) with LAUNCHER=slurm")
    for tool in ("sbatch", "squeue"):
        if shutil.which(tool, path=env.get("PATH")) is None:
            raise SweepError(f"{tool} not found — run LAUNCHER=slurm on a Slurm login node, or use LAUNCHER=local")
    return SlurmSettings(
        cpus_per_task=cpus, gpus_per_task=int(gpus), device="cuda" if int(gpus) and device != "cpu" else "cpu",
        stop_warning_s=stop_warning,
        max_running=max_running, partition=env.get("PARTITION", ""), account=env.get("ACCOUNT", ""),
        time_limit=env.get("TIME_LIMIT", ""), mem_per_task=env.get("MEM_PER_TASK", ""),
        job_name=env.get("JOB_NAME") or DEFAULT_JOB_NAME, extra_sbatch=split_list(env.get("EXTRA_SBATCH", "")))


def settings_from_env(env: Mapping[str, str], args: Sequence[str]) -> SweepSettings:
    """The sweep that `env` (run_baselines.sh's variables) and `args` (its arguments) describe, or a SweepError."""
    cpu_jobs = count("JOBS", env.get("JOBS") or str(cpu_count()))
    jobs_per_gpu = count("JOBS_PER_GPU", env.get("JOBS_PER_GPU") or DEFAULT_JOBS_PER_GPU)
    launcher = env.get("LAUNCHER") or "local"
    if launcher not in LAUNCHERS:
        raise SweepError(f"LAUNCHER={launcher} — use local or slurm")
    train_flags = optional_flags(env)
    datasets, seeds, agents = sweep_lists(env)
    device = env.get("DEVICE") or "auto"
    if device not in DEVICES:
        raise SweepError(f"DEVICE={device} — use auto, cpu or cuda")
    python = env.get("PYTHON") or "python"
    train_script = env.get("TRAIN_SCRIPT") or DEFAULT_TRAIN_SCRIPT
    if not Path(train_script).is_file():
        raise SweepError(f"cannot find {train_script} — run this script from the repository or set TRAIN_SCRIPT")
    slurm = slurm_settings(env, device) if launcher == "slurm" else None
    gpus = local_gpus(device, env) if slurm is None else ()
    if slurm is None and device == "cuda" and not gpus:
        raise SweepError("DEVICE=cuda but no GPU found (nvidia-smi -L) — use DEVICE=cpu")
    on_gpu = bool(gpus) or (slurm is not None and slurm.device == "cuda")
    seeds_per_process = seeds_in_a_process(env, len(seeds), on_gpu, python, train_script)
    return SweepSettings(
        datasets=datasets, seeds=seeds, agents=agents, log_path=env.get("LOG_PATH") or DEFAULT_LOG_PATH,
        python=python, train_script=train_script, train_flags=train_flags, extra_args=tuple(args),
        dry_run=env.get("DRY_RUN") == "1", seeds_per_process=seeds_per_process, cpu_jobs=cpu_jobs,
        jobs_per_gpu=jobs_per_gpu, gpus=gpus, slurm=slurm)
