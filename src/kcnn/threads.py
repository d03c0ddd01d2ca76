"""How many threads the numerical libraries (PyTorch, OpenMP, BLAS) use in a process.

The defaults suit a shared machine: the cores are divided among the processes that compute
at once, and idle OpenMP threads sleep instead of spinning on cores that other jobs need
(OMP_WAIT_POLICY=PASSIVE, which the `kcnn` command sets before the OpenMP runtime loads).
"""

from __future__ import annotations

import os
import sys

from threadpoolctl import threadpool_limits

TRAINING_THREADS = 1
"""Threads of `kcnn train`'s own process, unless --threads: on 2 cores, an epoch took as long
on two threads as on one (the network's products are small), and one leaves the other core
to whatever else runs."""


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def share_of_cores(processes: int) -> int:
    """Threads for each of `processes` processes computing at once: the cores divided, >= 1."""
    return max(1, available_cores() // processes)


def limit_threads(threads: int) -> None:
    """Let PyTorch (if imported), OpenMP and BLAS use `threads` threads in this process.

    Applies to the libraries loaded so far: call it after the heavy imports.
    """
    threadpool_limits(limits=threads)
    if (torch := sys.modules.get("torch")) is not None:
        torch.set_num_threads(threads)
