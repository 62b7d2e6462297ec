"""The run folder and the sweep's records, in one place: where train.py puts a run, the names of the files in it, the
sweep's manifest and the lines it marks its logs with. Torch-free (the sweep and the report import it): standard
library only.

A run folder is LOG_PATH/<project>/<group>/<dataset>/<agent>/seed<S>; it holds CONFIG (the settings, written at
the start), METRICS (a row per evaluation), CHECKPOINT and PROGRESS (its phase and step, readable without torch),
GMM (LOM's behaviour mixture) and, once finished, RESULTS. Beside it sits its lock, <run folder>LOCK_SUFFIX.
"""

from __future__ import annotations

import re
from pathlib import Path

CONFIG = "config.json"
METRICS = "metrics.csv"
RESULTS = "results.json"
CHECKPOINT = "checkpoint.pt"
# Beside checkpoint.pt: its phase and step, readable without torch.
PROGRESS = "checkpoint.json"
NAN_CHECKPOINT = "checkpoint_nan.pt"
GMM = "gmm.pt"
LOCK_SUFFIX = ".lock"
# A run folder's own name; the folder relative to LOG_PATH has RUN_KEY_PARTS parts.
RUN_DIR_NAME = re.compile(r"seed\d+")
RUN_KEY_PARTS = 5

# The sweep (run_baselines.sh) lists the runs it planned in LOG_PATH/MANIFEST: columns run, log (both relative to
# LOG_PATH), so that `lom.report --status` lists runs not started yet too.
MANIFEST = "sweep.tsv"
MANIFEST_HEADER = "run\tlog\n"
# The sweep marks each train.py start and exit in the run's log with lines starting "=== <date time>: ".
RECORD_PREFIX = "=== "
RECORD_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
EXIT_RECORD = re.compile(r"^=== \d{4}-\d\d-\d\d \d\d:\d\d:\d\d: exit (\d+)$")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def run_directory(log_path: str, project: str, group: str, dataset: str, agent: str, seed: int) -> Path:
    """The same flags always give the same folder: LOG/project/group/dataset/agent/seed<S>."""
    return Path(log_path) / slug(project) / slug(group) / slug(dataset) / slug(agent) / f"seed{seed}"


def run_directory_for(cfg, dataset_name: str) -> Path:
    return run_directory(cfg.log_path, cfg.project, cfg.group, dataset_name, cfg.agent_folder, cfg.seed)


def lock_path(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir.with_name(run_dir.name + LOCK_SUFFIX)


def read_manifest(root: Path) -> dict[str, str | None]:
    """LOG_PATH/MANIFEST as run -> log (None where the row has no log); empty when there is none."""
    path = root / MANIFEST
    if not path.is_file():
        return {}
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line.strip()]
    return {row[0]: row[1] if len(row) > 1 else None for row in rows}
