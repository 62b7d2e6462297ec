"""`python -m lom.report LOG_PATH --status`: where every run of a sweep stands, with its last step and score.

The runs are the ones run_baselines.sh planned (listed in LOG_PATH/sweep.tsv, so runs not started yet show up too)
and any other run folder under LOG_PATH. A run is
- done: it has results.json;
- running: a train.py holds its lock (lom.training.run_lock);
- failed: its log's last exit line is an error status;
- interrupted: it was started but stopped early: stopped by a signal (train.py exits 75 or 130 after saving), killed,
  or without any exit line (its machine went away). `--resume`, or re-running the sweep, continues it;
- not started: nothing of it exists yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lom.errors import EXIT_INTERRUPTED, EXIT_STOPPED
from lom.report.runs import read_json, read_learning_curve, run_folders
from lom.run_folder import CONFIG, EXIT_RECORD, METRICS, RECORD_PREFIX, RESULTS, read_manifest
from lom.training.run_lock import lock_holder

STATES = ("done", "running", "interrupted", "failed", "not started")
# 128 + n: ended by signal n (SIGKILL, OOM killer, ...) before it could save; its last checkpoint remains.
KILLED_BY_SIGNAL = 128
NOTE_WIDTH = 160


@dataclass(frozen=True)
class RunStatus:
    run: str  # the run folder relative to LOG_PATH
    state: str
    step: int | None
    score: float | None
    note: str = ""


def sweep_status(log_path: str | Path) -> list[RunStatus]:
    """Every planned or existing run under `log_path`, in the sweep's order, then other run folders by name."""
    root = Path(log_path)
    logs = read_manifest(root)
    for folder in run_folders(root):
        logs.setdefault(folder.relative_to(root).as_posix(), None)
    return [run_status(root, run, log) for run, log in logs.items()]


def run_status(root: Path, run: str, log: str | None) -> RunStatus:
    run_dir = root / run
    results_path = run_dir / RESULTS
    if results_path.is_file():
        results = read_json(results_path)
        return RunStatus(run, "done", results.get("steps"), results.get("final_normalized_score"))
    steps, scores = read_learning_curve(run_dir / METRICS)
    step, score = (int(steps[-1]), float(scores[-1])) if len(steps) else (None, None)
    holder = lock_holder(run_dir)
    if holder is not None:
        return RunStatus(run, "running", step, score, holder)
    started, status, detail = last_attempt(root / log) if log else (False, None, "")
    note = detail if status is None else f"exit {status}: {detail}".rstrip(": ")
    if status is not None and status not in (0, EXIT_STOPPED, EXIT_INTERRUPTED) and status < KILLED_BY_SIGNAL:
        return RunStatus(run, "failed", step, score, f"{note} (log: {log})")
    if started or (run_dir / CONFIG).is_file():
        return RunStatus(run, "interrupted", step, score, note)
    return RunStatus(run, "not started", None, None)


def last_attempt(log: Path) -> tuple[bool, int | None, str]:
    """From a run's log: whether train.py was ever started, the exit status of its last start (None when that
    start has no exit line), and the last line train.py (or the Slurm task) wrote since."""
    try:
        lines = log.read_text(errors="replace").replace("\r", "\n").splitlines()
    except FileNotFoundError:
        return False, None, ""
    starts = [i for i, line in enumerate(lines) if line.startswith(RECORD_PREFIX) and not EXIT_RECORD.match(line)]
    if not starts:
        return False, None, ""
    since = lines[starts[-1] + 1:]
    exits = [int(m.group(1)) for m in map(EXIT_RECORD.match, since) if m]
    said = [line.strip() for line in since if line.strip() and not line.startswith(RECORD_PREFIX)]
    return True, exits[-1] if exits else None, said[-1] if said else ""


def format_status(statuses: list[RunStatus], log_path: Path) -> str:
    counts = {state: sum(s.state == state for s in statuses) for state in STATES}
    lines = [f"{log_path}: {len(statuses)} run(s) — " + ", ".join(f"{n} {state}" for state, n in counts.items())]
    width = max(len(s.run) for s in statuses)
    lines.append(f"{'state':<12} {'step':>9} {'score':>7}  {'run':<{width}}  note")
    for s in statuses:
        step = "—" if s.step is None else str(s.step)
        score = "—" if s.score is None else f"{round(s.score, 1) + 0.0:.1f}"  # + 0.0 turns -0.0 into 0.0
        lines.append(f"{s.state:<12} {step:>9} {score:>7}  {s.run:<{width}}  {s.note[:NOTE_WIDTH]}".rstrip())
    return "\n".join(lines)
