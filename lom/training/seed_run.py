"""One seed of a run (all seeds of a process train as one stacked model, lom/seeds.py): its settings, run folder,
lock, config record, metrics and logger, and what it writes there: exactly what a run of that seed alone writes."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from lom.config import TrainConfig
from lom.errors import LOMError
from lom.io import write_json
from lom.run_folder import CONFIG, RESULTS, run_directory_for
from lom.training.run_lock import RunLock
from lom.training.run_logging import RunLogger


@dataclass
class SeedRun:
    cfg: TrainConfig
    dataset: str  # the dataset's name in run folders and results
    label: str = ""  # "seed N" where several seeds share a process, else ""
    run_dir: Path = field(init=False)
    record: dict = field(default_factory=dict)  # config.json
    metrics: list[dict] = field(default_factory=list)  # metrics.csv: one row per evaluation
    logger: RunLogger | None = None

    def __post_init__(self):
        self.run_dir = run_directory_for(self.cfg, self.dataset)

    def lock(self) -> RunLock:
        return RunLock(self.run_dir)

    def make_folder(self) -> None:
        """The run folder, empty unless the run resumes: an earlier run's is moved aside."""
        run_dir = self.run_dir
        if not self.cfg.resume and run_dir.exists() and any(run_dir.iterdir()):
            moved = run_dir.with_name(f"{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.move(str(run_dir), str(moved))
            print(f"an earlier run was in {run_dir}; it was moved to {moved} (add --resume to continue a run)")
        run_dir.mkdir(parents=True, exist_ok=True)

    def start_logging(self, facts: dict) -> None:
        """config.json (the settings, then `facts` about the data and the run), metrics.csv and the wandb run, the
        latter two holding the metrics so far."""
        c = self.cfg
        self.record = {**dataclasses.asdict(c), **facts}
        write_json(self.run_dir / CONFIG, self.record)
        self.logger = RunLogger(self.run_dir, self.record, c.enable_wandb, c.project, c.group,
                                f"{self.dataset}/{c.agent_folder}/seed{c.seed}",
                                run_id=hashlib.sha1(str(self.run_dir.resolve()).encode()).hexdigest()[:16])
        self.logger.restore(self.metrics)

    def update_record(self, changes: dict) -> None:
        self.record.update(changes)
        write_json(self.run_dir / CONFIG, self.record)
        self.logger.update_config(changes)

    def log_evaluation(self, row: dict) -> None:
        self.metrics.append(row)
        self.logger.log_evaluation(row)
        tqdm.write(f"step {row['step']}{' ' + self.label if self.label else ''}: return {row['return_mean']:.2f} ± "
                   f"{row['return_std']:.2f}, normalised score {row['normalized_score']:.1f}")

    def finish(self, steps: int, wall_time_s: float) -> dict:
        """results.json, from the last and the best evaluation."""
        final = self.metrics[-1]
        results = {
            "agent": self.cfg.agent,
            "dataset": self.dataset,
            "seed": self.cfg.seed,
            "steps": steps,
            "final_return": final["return_mean"],
            "final_normalized_score": final["normalized_score"],
            "best_normalized_score": max(row["normalized_score"] for row in self.metrics),
            "wall_time_s": wall_time_s,
            "run_dir": str(self.run_dir),
        }
        self.logger.finish(results)
        print(f"{self.label + ': ' if self.label else ''}final normalised score "
              f"{results['final_normalized_score']:.1f} (best {results['best_normalized_score']:.1f}, return "
              f"{results['final_return']:.2f}); results in {self.run_dir / RESULTS}")
        return results


def seed_runs(cfg: TrainConfig, seeds: tuple[int, ...], dataset: str) -> list[SeedRun]:
    """One SeedRun per seed, each with `cfg` but its own seed; a seed named twice is refused."""
    if len(set(seeds)) != len(seeds):
        raise LOMError(f"--seeds {','.join(map(str, seeds))}: name each seed once")
    return [SeedRun(dataclasses.replace(cfg, seed=seed), dataset, f"seed {seed}" if len(seeds) > 1 else "")
            for seed in seeds]
