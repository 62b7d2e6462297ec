"""The exception types that reach the user as a single line instead of a traceback."""

# Exit status of a run stopped by SIGTERM or SIGUSR1 after saving its checkpoint: EX_TEMPFAIL from sysexits.h,
# "try again later". run_baselines.sh's Slurm tasks requeue themselves on it.
EXIT_STOPPED = 75
# Exit status of a run stopped by Ctrl-C (SIGINT) after saving, the shell's usual 128 + SIGINT.
EXIT_INTERRUPTED = 130


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
