"""The start of every worker process kcnn spawns (benchmark units, the final fit): its
libraries' threads, and an end with the process that started it.

A process pool or a `multiprocessing.Process` outlives its parent when the parent is
killed (SIGTERM, SIGKILL, the out-of-memory killer): nothing tells the workers, and they
go on computing for nobody. `exit_with_parent` ends a worker soon after its parent ends,
however that happened.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from kcnn.threads import limit_threads

PARENT_POLL_SECONDS = 0.5
"""How often a worker looks whether its parent is still there."""


def start_worker(threads: int, parent: int) -> None:
    """First thing in a spawned worker: its libraries use `threads` threads, it ends with
    process `parent` (the pid of the process that started it, as that one saw it), and
    on SIGTERM it exits as Python does, releasing what it holds (its semaphores)."""
    exit_with_parent(parent)
    limit_threads(threads)
    signal.signal(signal.SIGTERM, _terminate)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM: unwind with SystemExit, unless the process is already exiting (its exit
    callbacks running, the main thread stopped), where an exception would only be printed."""
    if threading.main_thread().is_alive():
        sys.exit(128 + signum)


def exit_with_parent(parent: int, interval: float = PARENT_POLL_SECONDS) -> None:
    """End this process (exit code 1, at once) within `interval` seconds of the end of
    process `parent`, by a daemon thread that watches whose child this process is."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
