"""What every entry point does with a user error (lom.errors): one line on stderr, one table of exit statuses, the
one documented in docs/runs.md; warnings as one line."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lom import errors
from lom.errors import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_STOPPED, EXIT_USAGE, LOMError, TrainingStopped,
                        cli_status)

REPO = Path(__file__).resolve().parents[1]


def raising(exc: BaseException):
    def main():
        raise exc
    return main


@pytest.mark.parametrize("exc, status, line", [
    (LOMError("--x 3 is wrong\n  — pass 2"), EXIT_USAGE, "error: --x 3 is wrong — pass 2"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/run.lock"), EXIT_USAGE,
     "error: cannot write /mnt/ro/run.lock (read-only file system) — choose a folder you can write to"),
    (OSError(errno.ENOSPC, "No space left on device", "/full/x"), EXIT_USAGE,
     "error: cannot write /full/x (no space left) — free some space, or choose another folder"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"), EXIT_USAGE,
     "error: cannot access /root/x (permission denied) — check the path and its permissions, or choose another one"),
    (TrainingStopped("stopped by SIGTERM; add --resume to continue", EXIT_STOPPED), EXIT_STOPPED,
     "stopped by SIGTERM; add --resume to continue"),
    (KeyboardInterrupt(), EXIT_INTERRUPTED, "interrupted: re-run the same command with --resume to continue from the "
                                            "last checkpoint"),
])
def test_a_user_error_is_one_line_and_its_exit_status(exc, status, line, capsys):
    assert cli_status(raising(exc)) == status
    out = capsys.readouterr()
    assert out.err == line + "\n" and out.out == ""


def test_a_bug_keeps_its_traceback():
    with pytest.raises(FileNotFoundError):  # not a path the user chose to write: our code is wrong
        cli_status(raising(FileNotFoundError(errno.ENOENT, "No such file or directory", "/x")))
    with pytest.raises(ZeroDivisionError):
        cli_status(lambda: 1 / 0)


def test_the_status_of_main_is_passed_on():
    assert cli_status(lambda: None) == EXIT_OK
    assert cli_status(lambda: EXIT_FAILED) == EXIT_FAILED


def test_warnings_print_as_one_line():
    program = ("import warnings; from lom.errors import run_cli; "
               "run_cli(lambda: warnings.warn('the cached dataset is unusable\\n  (truncated); fetching it again'))")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == EXIT_OK
    assert out.stderr == "warning: the cached dataset is unusable (truncated); fetching it again\n"


def test_the_exit_status_table_is_documented():
    text = (REPO / "docs" / "runs.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| `(\d+)` \|", section, flags=re.M)}
    constants = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    assert documented == constants


@pytest.mark.parametrize("command", [["-m", "lom.evaluate", "nowhere"],
                                     ["-m", "lom.collect", "--env", "Pendulum-v1", "--out", "nowhere"]])
@pytest.mark.parametrize("device", ["gpu", "tpu"])
def test_an_unknown_device_is_one_line(command, device, tmp_path):
    out = subprocess.run([sys.executable, *command, "--device", device], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    assert out.returncode == EXIT_USAGE and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"error: --device '{device}' is not") and "use " in out.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("module, shown", [
    ("lom.evaluate", ["--episodes EPISODES  episodes to run, in parallel (default: 10)", "(default: cpu)"]),
    ("lom.collect", ["(default: 1000000)", "(default: 0.3333)", "(default: cpu)"]),
    ("lom.export", ["(default: RUN_DIR/policy.pt"]),
])
def test_help_shows_the_defaults(module, shown):
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"})
    assert out.returncode == EXIT_OK
    text = " ".join(out.stdout.split())
    assert all(" ".join(s.split()) in text for s in shown), out.stdout
    assert "(default: None)" not in text and "(default: False)" not in text
