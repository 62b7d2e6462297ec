"""The exception types that reach the user as a single line instead of a traceback, the exit statuses every entry
point uses (docs/runs.md#exit-codes), and `run_cli`, the one wrapper that turns the former into the latter."""

from __future__ import annotations

import contextlib
import errno
import sys
import warnings
from collections.abc import Callable
from pathlib import PurePath
from typing import NoReturn

EXIT_OK = 0
# Some runs of a sweep failed (run_baselines.sh; their logs say why); Python's own status for an unexpected error.
EXIT_FAILED = 1
# A user error: a bad flag or setting, a missing or corrupt file, a folder that cannot be written. argparse's status.
EXIT_USAGE = 2
# Exit status of a run stopped by SIGTERM or SIGUSR1 after saving its checkpoint: EX_TEMPFAIL from sysexits.h,
# "try again later". run_baselines.sh's Slurm tasks requeue themselves on it.
EXIT_STOPPED = 75
# Exit status of a run stopped by Ctrl-C (SIGINT) after saving, the shell's usual 128 + SIGINT.
EXIT_INTERRUPTED = 130

# OSErrors that mean "this path cannot be written here" (not a bug in this code): they become one line too.
UNWRITABLE = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
              errno.EPERM: "operation not permitted", errno.ENOSPC: "no space left", errno.EDQUOT: "quota exceeded",
              errno.ENOTDIR: "a part of the path is a file, not a folder"}


class LOMError(Exception):
    """A problem the user can fix (bad flag, missing or corrupt file, ...).

    The message names the problem and the fix; command-line entry points print it as one line and exit non-zero.
    """


class TrainingStopped(Exception):
    """A stop signal ended training after the checkpoint was written; entry points print the message (which says
    how to continue) and exit with `exit_status`."""

    def __init__(self, message: str, exit_status: int):
        super().__init__(message)
        self.exit_status = exit_status


def unwritable(error: OSError, what: str, fix: str) -> LOMError:
    """A LOMError for an OSError met while creating or writing `what`: "cannot write <what> (<reason>) — <fix>"."""
    reason = UNWRITABLE.get(error.errno) or error.strerror or type(error).__name__
    # Name the failing path only where `what` does not already name it or its folder (a temporary file's name is noise).
    named = error.filename is None or any(str(p) in what for p in (error.filename, PurePath(error.filename).parent))
    where = "" if named else f": {error.filename}"
    return LOMError(f"cannot write {what} ({reason}{where}) — {fix}")


@contextlib.contextmanager
def writing(what: str, fix: str):
    """Within the block, an OSError of a path that cannot be written becomes a LOMError naming `what` and `fix`."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in UNWRITABLE:
            raise
        raise unwritable(exc, what, fix) from None


def print_error(message: str) -> None:
    """The one way entry points show a user error: one line on stderr."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """warnings.formatwarning for command lines: "warning: <message>", without the source line Python adds."""
    return f"warning: {' '.join(str(message).split())}\n"


INTERRUPTED_HINT = "re-run the same command with --resume to continue from the last checkpoint"


def cli_status(main: Callable[..., int | None], *args, interrupted: str = INTERRUPTED_HINT) -> int:
    """Run an entry point's `main(*args)` and return its exit status (None: EXIT_OK).

    A LOMError, or an OSError of a path that cannot be written, is one line and EXIT_USAGE; a saved stop prints how
    to continue and returns its status; Ctrl-C prints `interrupted` and returns EXIT_INTERRUPTED. Warnings print as
    one line each from here on.
    """
    warnings.formatwarning = one_line_warning
    try:
        status = main(*args)
    except LOMError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    except TrainingStopped as stop:
        print(stop, file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt:
        print(f"interrupted: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        if exc.errno not in UNWRITABLE:
            raise  # not a path the user can fix: a bug, keep its traceback
        print_error(f"{_what_failed(exc)} {exc.filename or 'a file'} ({UNWRITABLE[exc.errno]}) — {_fix_for(exc)}")
        return EXIT_USAGE
    return EXIT_OK if status is None else status


def _what_failed(exc: OSError) -> str:
    # Only writes meet a read-only or full file system; a denied permission may be a read's too.
    return "cannot write" if exc.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT) else "cannot access"


def _fix_for(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some space, or choose another folder"
    if exc.errno == errno.EROFS:
        return "choose a folder you can write to"
    return "check the path and its permissions, or choose another one"


def run_cli(main: Callable[[], int | None], interrupted: str = INTERRUPTED_HINT) -> NoReturn:
    """`if __name__ == "__main__": run_cli(main)`: exit with cli_status(main)."""
    sys.exit(cli_status(main, interrupted=interrupted))
