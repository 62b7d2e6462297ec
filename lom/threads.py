"""How many CPU threads PyTorch uses: no more than the cores that other processes leave free.

An OpenMP worker beyond the free cores spins on a core that another busy process (or its own main thread) needs,
and every parallel op then waits for a scheduler tick: on 2 shared cores we measured training steps 10-40x slower
with two threads than with one.
"""

from __future__ import annotations

import os
import time

import torch

THREADS_VARIABLE = "OMP_NUM_THREADS"
PROC_STAT = "/proc/stat"
# How long to watch the cores before choosing: long enough to span many scheduler ticks (10 ms), short beside a
# run's start-up. The 1-minute load average is no substitute: it still counts processes that ended seconds ago (on
# an idle 2-core machine seconds after other jobs stopped it read 2.4, and the first run then took 1 thread of 2).
BUSY_WINDOW_S = 0.25


def usable_cores() -> set[int]:
    """The cores this process may run on (its CPU affinity where the OS reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _cpu_times(cores: set[int]) -> tuple[int, int] | None:
    """(busy, total) clock ticks since boot summed over `cores`, from /proc/stat; None where it cannot be read."""
    busy = total = seen = 0
    try:
        with open(PROC_STAT) as f:
            for line in f:
                name, *fields = line.split()
                if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores):
                    continue
                ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
                seen += 1
    except (OSError, ValueError):
        return None
    return (busy, total) if seen else None


def busy_cores(window_s: float = BUSY_WINDOW_S) -> float | None:
    """How many of this process's usable cores other processes keep busy now, from the CPU time they use over
    `window_s` seconds (this process sleeps meanwhile); None where the OS does not say (no /proc/stat)."""
    cores = usable_cores()
    before = _cpu_times(cores)
    if before is None:
        return None
    time.sleep(window_s)
    after = _cpu_times(cores)
    if after is None or after[1] <= before[1]:
        return None
    return len(cores) * (after[0] - before[0]) / (after[1] - before[1])


def free_cores() -> int:
    """Usable cores minus those other processes keep busy, at least one. Busy cores are measured over a quarter of
    a second where the OS reports per-core CPU time (Linux), else read from the 1-minute load average."""
    busy = busy_cores()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except (AttributeError, OSError):
            busy = 0.0
    return max(1, len(usable_cores()) - round(busy))


def set_torch_threads() -> int:
    """Use the free cores, unless OMP_NUM_THREADS is set (PyTorch has then taken that count); return the count."""
    if not os.environ.get(THREADS_VARIABLE):
        torch.set_num_threads(free_cores())
    return torch.get_num_threads()
