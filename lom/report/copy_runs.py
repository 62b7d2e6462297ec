"""`python -m lom.report.copy_runs SOURCE DEST`: copy each run's small files (config.json, metrics.csv, results.json)
from the folder where a study's runs train to the folder the study commits, each at the same relative path.

What a study keeps in the repository: no checkpoints, mixtures, datasets or logs. A code checkout inside SOURCE
(a study's frozen worktree, which holds committed results of its own) is not searched.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from lom.cli import OneLineParser
from lom.errors import LOMError, cli_status
from lom.report.runs import is_run_config
from lom.run_folder import CONFIG, METRICS, RESULTS, RUN_DIR_NAME

SMALL_FILES = (CONFIG, METRICS, RESULTS)
SKIPPED_FOLDERS = ("logs",)  # a sweep's per-run logs: long, and rebuilt by re-running


def source_run_folders(source: Path) -> list[Path]:
    """Run folders (seed<S> with a run's config.json) under `source`, outside code checkouts and log folders."""
    found = []
    for folder, subfolders, files in os.walk(source):
        here = Path(folder)
        if here != source and (".git" in files or ".git" in subfolders):
            subfolders.clear()
            continue
        subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED_FOLDERS)
        if RUN_DIR_NAME.fullmatch(here.name) and CONFIG in files and is_run_config(here / CONFIG):
            found.append(here)
    return found


def copy_runs(source: Path, dest: Path) -> list[Path]:
    """Copy every run's small files from `source` to `dest`; the run folders copied, as paths under `dest`."""
    if not source.is_dir():
        raise LOMError(f"{source} is not a directory — pass the folder the study's runs train in")
    copied = []
    for run in source_run_folders(source):
        target = dest / run.relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        for name in SMALL_FILES:
            if (run / name).is_file():
                shutil.copy2(run / name, target / name)
        copied.append(target)
    return copied


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m lom.report.copy_runs", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="where the study's runs train (checkpoints and all)")
    parser.add_argument("dest", type=Path, help="the study's folder in the repository")
    args = parser.parse_args(argv)
    copied = copy_runs(args.source, args.dest)
    print(f"copied the small files of {len(copied)} run(s) from {args.source} to {args.dest}")


if __name__ == "__main__":
    sys.exit(cli_status(main))
