"""Stop signals (SIGTERM and SIGUSR1, which Slurm sends before it kills or preempts a job, and Ctrl-C's SIGINT) only
set a flag; the training loop reads it between steps, writes the checkpoint there and exits with STOP_EXIT_STATUS."""

from __future__ import annotations

import signal
import threading

from lom.errors import EXIT_INTERRUPTED, EXIT_STOPPED, TrainingStopped

STOP_EXIT_STATUS = {signal.SIGTERM: EXIT_STOPPED, signal.SIGUSR1: EXIT_STOPPED, signal.SIGINT: EXIT_INTERRUPTED}


class StopRequests:
    """While active, stop signals set `signum` instead of killing the process; the loop acts on it between steps.

    A second Ctrl-C is not caught: it stops at once, without saving.
    """

    def __init__(self):
        self.signum: int | None = None
        self.previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():  # Python delivers signals to the main thread only
            for signum in STOP_EXIT_STATUS:
                self.previous[signum] = signal.signal(signum, self._request)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: a handler set outside Python
        self.previous.clear()

    def _request(self, signum: int, frame) -> None:
        self.signum = signum
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def stopped(self, where: str) -> TrainingStopped:
        """The error that ends a run stopped by the signal received, `where` it stopped and saved."""
        return TrainingStopped(f"stopped by {signal.Signals(self.signum).name} at {where}: run the same command "
                               "with --resume to continue", STOP_EXIT_STATUS[self.signum])
