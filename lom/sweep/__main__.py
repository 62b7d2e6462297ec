"""`python -m lom.sweep [extra train.py arguments]`: the sweep run_baselines.sh describes (see lom.sweep)."""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from lom.errors import cli_status, unwritable
from lom.sweep.local import run_local
from lom.sweep.plan import resolve_run_dirs, sweep_runs, write_manifest
from lom.sweep.settings import PROGRAM, SweepError, SweepSettings, settings_from_env
from lom.sweep.slurm import submit
from lom.training.run_lock import NO_LOCKING

LOCK_NAME = ".sweep.lock"  # in $LOG_PATH/logs: one sweep at a time trains into a LOG_PATH


@contextmanager
def sweep_lock(settings: SweepSettings) -> Iterator[None]:
    """Create the log folder and hold its sweep lock for the block, or a LOMError if it cannot or another sweep
    holds it."""
    try:
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(settings.log_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise unwritable(exc, f"the sweep's logs into {settings.log_dir}", "set LOG_PATH to a folder you can write "
                         "to") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SweepError(f"another {PROGRAM} is already training into {settings.log_path} — wait for it or use "
                         "another LOG_PATH") from None
    except OSError as exc:
        if exc.errno not in NO_LOCKING:  # a file system without locks: go on unlocked
            raise
    try:
        yield
    finally:
        os.close(fd)


def run_sweep(settings: SweepSettings) -> int:
    """Resolve every run's folder, list them in sweep.tsv, then train or submit them; the exit status."""
    runs = sweep_runs(settings)
    print(f"sweep: {len(runs)} run(s) = {len(settings.datasets)} dataset(s) × {len(settings.seeds)} seed(s) × "
          f"{len(settings.agents)} agent(s) on {settings.where()}")
    runs = resolve_run_dirs(settings, runs)
    for run in runs:
        if run.run_dir is None:
            print(f"[{run.number}/{len(runs)}] FAILED {run.name}: train.py --print_run_dir failed (log: {run.log})")
    if not settings.dry_run:
        write_manifest(settings.log_path, runs)
    return submit(settings, runs) if settings.slurm is not None else run_local(settings, runs)


def main(argv: Sequence[str]) -> int:
    """The sweep's exit status; a bad setting (a SweepError) is one line on stderr, as every entry point's error."""
    sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen, also in a log file
    # Ctrl-C reaches here only before the runs start (the local runner handles it itself).
    return cli_status(sweep, argv, interrupted=f"re-run the same {PROGRAM} command: finished runs are skipped and "
                      "interrupted ones resume")


def sweep(argv: Sequence[str]) -> int:
    settings = settings_from_env(os.environ, argv)
    with sweep_lock(settings):
        return run_sweep(settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
