"""How many CPU threads PyTorch uses: no more than the cores that other processes leave free.

An OpenMP worker beyond the free cores spins on a core that another busy process (or its own main thread) needs,
and every parallel op then waits for a scheduler tick: on 2 shared cores we measured training steps 10-40x slower
with two threads than with one.
"""

from __future__ import annotations

import os

import torch

THREADS_VARIABLE = "OMP_NUM_THREADS"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def free_cores() -> int:
    """Usable cores minus the machine's 1-minute load average, at least one (all usable ones where the OS reports
    no load average)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1, usable_cores() - round(load))


def set_torch_threads() -> int:
    """Use the free cores, unless OMP_NUM_THREADS is set (PyTorch has then taken that count); return the count."""
    if not os.environ.get(THREADS_VARIABLE):
        torch.set_num_threads(free_cores())
    return torch.get_num_threads()
