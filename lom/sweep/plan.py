"""What a sweep trains: its runs in order, their folders, what to do with each, the processes, their commands.

A run is one dataset × agent × seed with its own folder. Every decision is made per run from what its folder holds
(`local_decision`, `slurm_decision`); only then are the runs to train grouped into processes (`group_seeds`), so a
process holds only unfinished seeds and a finished seed is never retrained because its siblings are not.
"""

from __future__ import annotations

import enum
import json
import subprocess
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from lom.agents import REGISTRY, flag_prefix
from lom.run_folder import CHECKPOINT, MANIFEST, MANIFEST_HEADER, PROGRESS, RESULTS, RUN_KEY_PARTS
from lom.sweep.logs import log_name
from lom.sweep.settings import SweepSettings, cpu_count
from lom.training.run_lock import lock_holder

# AGENTS entries that stand for more than `--agent <name>`: LOM-paper is LOM with the authors' preset (its runs
# train in .../<dataset>/LOM-paper/seed<S>, beside LOM's).
AGENT_FLAGS = {"LOM-paper": ("--agent", "LOM", "--preset", "paper")}


class Decision(enum.Enum):
    """What the sweep does with one run."""

    SKIP = "skip"  # finished: it has results.json
    RESUME = "resume"  # interrupted: train.py --resume continues from its checkpoint
    START = "start"  # nothing saved yet
    QUEUED = "queued"  # Slurm: a task of an earlier submission that Slurm still holds trains it
    ELSEWHERE = "running elsewhere"  # Slurm: a train.py outside the queue (another machine, a user) holds it
    SUBMIT = "submit"  # Slurm: submitted in this array job (it resumes there if it has a checkpoint)


@dataclass(frozen=True)
class Run:
    """One dataset × agent × seed; `number` is its place in the sweep's order, from 1."""

    number: int
    dataset: str
    agent: str
    seed: int
    log: Path
    run_dir: Path | None = None  # from train.py --print_run_dir; None when train.py refused the run's flags

    @property
    def name(self) -> str:
        return f"{self.dataset} {self.agent} seed {self.seed}"

    @property
    def key(self) -> str:
        """The run folder relative to LOG_PATH, as sweep.tsv and Slurm's tasks.tsv list it."""
        assert self.run_dir is not None
        return "/".join(self.run_dir.parts[-RUN_KEY_PARTS:])

    def finished(self) -> bool:
        return self.run_dir is not None and (self.run_dir / RESULTS).is_file()


@dataclass(frozen=True)
class Process:
    """One train.py process: unfinished seeds of one dataset and agent, in the sweep's order."""

    runs: tuple[Run, ...]

    @property
    def name(self) -> str:
        first = self.runs[0]
        if len(self.runs) == 1:
            return first.name
        return f"{first.dataset} {first.agent} seeds {','.join(str(run.seed) for run in self.runs)}"

    def tag(self, total: int) -> str:
        """The process's place in the sweep's output: its first run's number out of `total`."""
        return f"[{self.runs[0].number}/{total}]"

    @property
    def logs(self) -> tuple[Path, ...]:
        return tuple(run.log for run in self.runs)


def sweep_runs(settings: SweepSettings) -> list[Run]:
    """Every run of the sweep, seed-major, so that a partly finished sweep already has every dataset × agent for
    the first seeds."""
    combos = [(d, a, s) for s in settings.seeds for d in settings.datasets for a in settings.agents]
    return [Run(i + 1, d, a, s, settings.log_dir / log_name(d, a, s)) for i, (d, a, s) in enumerate(combos)]


def seed_flags(seeds: Sequence[int]) -> list[str]:
    if len(seeds) == 1:
        return ["--seed", str(seeds[0])]
    return ["--seeds", ",".join(str(seed) for seed in seeds)]


def train_command(settings: SweepSettings, runs: Sequence[Run], slot: str) -> list[str]:
    """The command line training `runs` (seeds of one dataset and agent) on a slot: "gpu:<id>", "cpu" (one
    thread) or "slurm" (CPUS_PER_TASK threads, Slurm's device)."""
    if slot.startswith("gpu:"):
        environment, device = [f"CUDA_VISIBLE_DEVICES={slot.removeprefix('gpu:')}"], "cuda"
    elif slot == "cpu":
        environment, device = ["OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1"], "cpu"
    else:
        assert settings.slurm is not None
        threads = settings.slurm.cpus_per_task
        environment, device = [f"OMP_NUM_THREADS={threads}", f"MKL_NUM_THREADS={threads}"], settings.slurm.device
    first = runs[0]
    agent_flags = AGENT_FLAGS.get(first.agent, ("--agent", first.agent))
    return ["env", *environment, settings.python, settings.train_script, "--env_name", first.dataset, *agent_flags,
            *seed_flags([run.seed for run in runs]), *settings.train_flags, "--log_path", settings.log_path, "--resume",
            "--device", device, *args_for_agent(settings.extra_args, agent_flags[1])]


def args_for_agent(args: Sequence[str], agent: str) -> list[str]:
    """run_baselines.sh's arguments as one agent takes them: another agent's own hyper-parameters (--iql_beta 5,
    --td3bc_alpha=2) are left out, so one sweep can set each baseline's."""
    others = tuple(f"--{flag_prefix(name)}_" for name in REGISTRY if name != agent)
    kept, skip_value = [], False
    for arg in args:
        if skip_value:
            skip_value = False
        elif arg.startswith(others):
            skip_value = "=" not in arg
        else:
            kept.append(arg)
    return kept


def print_run_dir(settings: SweepSettings, run: Run) -> Run:
    """`run` with its folder, as train.py itself names it; when train.py refuses the flags, its message goes to
    the run's log and the folder stays None."""
    done = subprocess.run([*train_command(settings, [run], "cpu"), "--print_run_dir"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    lines = done.stdout.splitlines()
    if lines and lines[-1]:
        return replace(run, run_dir=Path(lines[-1]))
    with open(run.log, "a") as log:
        log.write(done.stderr)
    return run


def resolve_run_dirs(settings: SweepSettings, runs: Sequence[Run]) -> list[Run]:
    """Every run with its folder, asking train.py for several at a time."""
    with ThreadPoolExecutor(cpu_count()) as pool:
        return list(pool.map(lambda run: print_run_dir(settings, run), runs))


def local_decision(run: Run) -> Decision:
    """Skip a finished run, resume one with a checkpoint, start the others."""
    assert run.run_dir is not None
    if run.finished():
        return Decision.SKIP
    return Decision.RESUME if (run.run_dir / CHECKPOINT).is_file() else Decision.START


def slurm_decision(run: Run, queued: Iterable[str]) -> Decision:
    """Skip a finished run and one that a live task of an earlier submission (its folder in `queued`) or another
    train.py already trains; submit the others."""
    assert run.run_dir is not None
    if run.finished():
        return Decision.SKIP
    if run.key in queued:
        return Decision.QUEUED
    return Decision.ELSEWHERE if lock_holder(run.run_dir) is not None else Decision.SUBMIT


def stopped_at(run: Run) -> object:
    """Where a run would resume from: None for a fresh start, the phase and step its last checkpoint recorded
    (beside it, in PROGRESS), or, for a checkpoint without that record, the run itself (it trains alone)."""
    assert run.run_dir is not None
    if local_decision(run) is not Decision.RESUME:
        return None
    try:
        where = json.loads((run.run_dir / PROGRESS).read_text())
        return (where["phase"], where["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return run.key


def group_seeds(runs: Sequence[Run], seeds_per_process: int) -> list[Process]:
    """The runs to train as processes of up to `seeds_per_process` seeds of one dataset and agent, in the order of
    their first runs. Only seeds that resume from the same point (or all start afresh) share a process: train.py
    trains the seeds of a process in step."""
    by_pair: dict[tuple, list[Run]] = {}
    for run in runs:
        by_pair.setdefault((run.dataset, run.agent, stopped_at(run)), []).append(run)
    processes = [Process(tuple(group[i:i + seeds_per_process]))
                 for group in by_pair.values() for i in range(0, len(group), seeds_per_process)]
    return sorted(processes, key=lambda process: process.runs[0].number)


def write_manifest(log_path: str, runs: Sequence[Run]) -> None:
    """Add the runs that $LOG_PATH/sweep.tsv does not list yet (folder and log, both relative to LOG_PATH), so
    that `lom.report --status` lists runs not started yet too."""
    manifest = Path(log_path) / MANIFEST
    listed = set()
    if manifest.is_file():
        listed = {line.split("\t")[0] for line in manifest.read_text().splitlines()}
    else:
        manifest.write_text(MANIFEST_HEADER)
    with open(manifest, "a") as out:
        for run in runs:
            if run.run_dir is not None and run.key not in listed:
                listed.add(run.key)
                out.write(f"{run.key}\tlogs/{run.log.name}\n")
