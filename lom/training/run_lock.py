"""One writer per run folder: train.py holds an exclusive lock on `<run folder>.lock`, a file beside the folder.

The lock is an flock, so the kernel drops it when its process ends, however it ends (SIGKILL, a crash, a lost node
on NFS once its lease runs out): a killed run never blocks a later --resume. The file sits beside the run folder,
not in it, so that moving an old run aside (train.py without --resume) does not move the lock with it. The holder
writes its pid and host into the file so that a refused process can name it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import time
from pathlib import Path

from lom.errors import LOMError, unwritable
from lom.run_folder import lock_path

# `lom.report --status` probes a lock by taking it for an instant; a starting run retries over this span rather
# than mistake such a probe for a second writer.
ACQUIRE_PATIENCE_S = 2.0
RETRY_EVERY_S = 0.05
# File systems where flock is unsupported answer with one of these; the run goes on unlocked, with a warning.
NO_LOCKING = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def _holder_text(fd: int) -> str:
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    return text or "another process"


class RunLock:
    """`with RunLock(run_dir):` the block runs as the folder's only writer, or LOMError names the holder."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = lock_path(run_dir)
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise unwritable(exc, f"the run folder's lock {self.path}",
                             "pass a --log_path you can write to (or make that folder writable)") from None
        deadline = time.monotonic() + ACQUIRE_PATIENCE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(RETRY_EVERY_S)
                    continue
                holder = _holder_text(fd)
                os.close(fd)
                raise LOMError(f"run folder {self.run_dir} is in use: {self.path} is held by {holder} — wait for "
                               "that run to finish or stop it; two processes must not train into one folder") from None
            except OSError as exc:
                if exc.errno not in NO_LOCKING:
                    os.close(fd)
                    raise
                print(f"warning: the file system of {self.path} cannot lock files ({exc.strerror}); nothing stops a "
                      "second train.py from writing to this run folder", file=sys.stderr)
                break
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%F %T')}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = None


def lock_holder(run_dir: str | os.PathLike) -> str | None:
    """Who holds the run folder's lock ("pid 12 on host since ..."), or None when no process does."""
    path = lock_path(run_dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _holder_text(fd)
    except OSError as exc:
        if exc.errno in NO_LOCKING:
            return None
        raise
    finally:
        os.close(fd)  # also drops the shared lock just taken
