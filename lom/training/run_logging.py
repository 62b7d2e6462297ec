"""What a run leaves behind for people: metrics.csv, results.json, and wandb if asked (lom/run_folder.py names
the files)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from lom.errors import LOMError
from lom.io import atomic_path, write_json
from lom.run_folder import METRICS, RESULTS

# metrics.csv always starts with these columns; loss columns (which vary by agent) follow.
METRIC_COLUMNS = ["step", "wall_time_s", "return_mean", "return_std", "normalized_score", "normalized_score_std"]


class RunLogger:
    """Writes metrics.csv (rewritten whole, atomically, at each evaluation) and mirrors rows to wandb."""

    def __init__(self, run_dir: Path, config: dict, enable_wandb: bool, project: str, group: str, run_name: str,
                 run_id: str):
        self.run_dir = run_dir
        self.rows: list[dict] = []
        self.wandb_run = None
        if enable_wandb:
            self.wandb_run = _start_wandb(run_dir, config, project, group, run_name, run_id)

    def update_config(self, changes: dict) -> None:
        """Settings learnt after the run started (whether its steps were captured), mirrored to wandb."""
        if self.wandb_run is not None:
            self.wandb_run.config.update(changes, allow_val_change=True)

    def log_evaluation(self, row: dict) -> None:
        self.rows.append(row)
        self._write_csv()
        if self.wandb_run is not None:
            self.wandb_run.log({k: v for k, v in row.items() if k != "step"}, step=int(row["step"]))

    def restore(self, rows: list[dict]) -> None:
        self.rows = list(rows)
        self._write_csv()

    def _write_csv(self) -> None:
        extra = sorted({k for row in self.rows for k in row} - set(METRIC_COLUMNS))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS + extra, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        with atomic_path(self.run_dir / METRICS) as tmp:
            tmp.write_text(buffer.getvalue())

    def finish(self, results: dict) -> None:
        write_json(self.run_dir / RESULTS, results)
        if self.wandb_run is not None:
            self.wandb_run.summary.update(results)
            self.wandb_run.finish()


def _start_wandb(run_dir: Path, config: dict, project: str, group: str, run_name: str, run_id: str):
    try:
        import wandb
    except ImportError as exc:
        raise LOMError("--enable_wandb 1 needs wandb: pip install wandb (or run without --enable_wandb)") from exc
    # create_new: seeds trained in one process (train.py --seeds) are one wandb run each, side by side.
    return wandb.init(project=project, group=group, name=run_name, config=config, dir=str(run_dir),
                      id=run_id, resume="allow", reinit="create_new")
