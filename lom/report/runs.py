"""Find and read the run folders written by train.py (config.json, metrics.csv, results.json)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lom.errors import LOMError
from lom.run_folder import CONFIG, METRICS, RESULTS, RUN_DIR_NAME

REQUIRED_CONFIG_KEYS = ("agent", "dataset", "seed")
# train.py moves a replaced run aside as seed<S>.old-<time>; only seed<S> folders are live runs.
# config.json's "preset" (train.py --preset); runs from before presets existed trained LOM's own defaults.
DEFAULT_PRESET = "lom"


@dataclass(frozen=True)
class RunRecord:
    """One training run. `final_score` comes from results.json and is None while the run is incomplete."""

    run_dir: Path
    dataset: str
    agent: str
    seed: int
    experiment: str
    final_score: float | None
    steps: np.ndarray
    scores: np.ndarray
    preset: str = DEFAULT_PRESET

    @property
    def complete(self) -> bool:
        return self.final_score is not None

    @property
    def last_score(self) -> float | None:
        """The final score, or for an incomplete run its latest evaluation (None before the first one)."""
        if self.complete:
            return self.final_score
        return float(self.scores[-1]) if len(self.scores) else None

    def window_score(self, final_window: int) -> float | None:
        """The mean of the run's last `final_window` evaluations (of as many as it has); with 1, `last_score`."""
        if final_window == 1 or not len(self.scores):
            return self.last_score
        return float(np.mean(self.scores[-final_window:]))

    @property
    def column_agent(self) -> str:
        """The agent as the table names it: LOM trained under a preset other than lom is "LOM [<preset>]"."""
        return f"{self.agent} [{self.preset}]" if self.agent == "LOM" and self.preset != DEFAULT_PRESET else self.agent


def find_runs(log_path: str | Path) -> list[RunRecord]:
    """Every run folder under `log_path`: a seed<S> folder whose config.json names agent, dataset and seed."""
    root = Path(log_path)
    if not root.is_dir():
        raise LOMError(f"{root} is not a directory — pass the --log_path folder that train.py wrote to")
    runs = [read_run_record(folder) for folder in run_folders(root)]
    if not runs:
        raise LOMError(f"no runs found under {root} — train some first (train.py or run_baselines.sh)")
    return runs


def run_folders(root: Path) -> list[Path]:
    """The run folders under `root`, sorted: seed<S> folders whose config.json names agent, dataset and seed."""
    configs = [p for p in sorted(root.rglob(CONFIG)) if RUN_DIR_NAME.fullmatch(p.parent.name)]
    return [p.parent for p in configs if is_run_config(p)]


def read_run_record(run_dir: Path) -> RunRecord:
    config = read_json(run_dir / CONFIG)
    results_path = run_dir / RESULTS
    final_score = None
    if results_path.exists():
        results = read_json(results_path)
        if "final_normalized_score" not in results:
            raise LOMError(f"{results_path} has no final_normalized_score — re-run that training with --resume")
        final_score = float(results["final_normalized_score"])
    steps, scores = read_learning_curve(run_dir / METRICS)
    return RunRecord(
        run_dir=run_dir,
        dataset=str(config["dataset"]),
        agent=str(config["agent"]),
        seed=int(config["seed"]),
        # run folders are <project>/<group>/<dataset slug>/<agent>/seed<S>
        experiment=f"{run_dir.parents[3].name}/{run_dir.parents[2].name}" if len(run_dir.parents) > 3 else "",
        final_score=final_score,
        steps=steps,
        scores=scores,
        preset=str(config.get("preset", DEFAULT_PRESET)),
    )


def read_learning_curve(metrics_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(step, normalized_score) columns of metrics.csv; empty arrays when the file is missing or has no rows."""
    if not metrics_path.exists():
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    with open(metrics_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"step", "normalized_score"} - set(reader.fieldnames or ())
        if missing:
            raise LOMError(f"{metrics_path} lacks the column(s) {sorted(missing)} — it was not written by train.py")
        try:
            rows = [(int(float(r["step"])), float(r["normalized_score"])) for r in reader]
        except (TypeError, ValueError) as e:
            raise LOMError(f"{metrics_path} has a malformed row ({e}) — delete that row or the run folder") from None
    # a resumed run may re-log steps after its last checkpoint: the latest row for a step wins
    latest = {step: score for step, score in rows if not math.isnan(score)}
    if not latest:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    steps, scores = zip(*sorted(latest.items()))
    return np.asarray(steps, dtype=np.int64), np.asarray(scores, dtype=np.float64)


def column_labels(runs: list[RunRecord]) -> list[str]:
    """The table column of each run: its agent ("LOM [paper]" under --preset paper), plus its experiment where that
    agent ran in several (the group alone when every run shares one project), e.g. "LOM [default]" and
    "LOM [authors-rule]" beside "IQL", or "LOM [paper, default]"."""
    experiments: dict[str, set[str]] = {}
    for r in runs:
        experiments.setdefault(r.column_agent, set()).add(r.experiment)
    one_project = len({r.experiment.split("/")[0] for r in runs}) == 1

    def label(r: RunRecord) -> str:
        tags = [] if r.column_agent == r.agent else [r.preset]
        if len(experiments[r.column_agent]) > 1:
            tags.append(r.experiment.split("/")[-1] if one_project else r.experiment)
        return f"{r.agent} [{', '.join(tags)}]" if tags else r.agent

    labels = [label(r) for r in runs]
    check_distinct(runs, labels)
    return labels


def check_distinct(runs: list[RunRecord], labels: list[str]) -> None:
    """Refuse two kinds of run under one column label (an experiment named like a preset, e.g. group "paper")."""
    kinds: dict[str, tuple[str, str]] = {}
    for r, label in zip(runs, labels):
        kind = kinds.setdefault(label, (r.column_agent, r.experiment))
        if kind != (r.column_agent, r.experiment):
            raise LOMError(f"column {label!r} would mix {kind[0]} runs of {kind[1]} with {r.column_agent} runs of "
                           f"{r.experiment} ({r.run_dir}) — rename one experiment's group folder")


def is_run_config(path: Path) -> bool:
    config = read_json(path)
    return isinstance(config, dict) and all(k in config for k in REQUIRED_CONFIG_KEYS)


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise LOMError(f"cannot read {path} ({e}) — delete or repair that run folder") from None
