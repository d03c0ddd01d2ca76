"""Faults for worker processes, in a module they import quickly."""

from __future__ import annotations

import contextlib
import os
import signal

from distributed.diagnostics.plugin import WorkerPlugin


class KillOnce(WorkerPlugin):
    """Kills the worker process that starts a task while `marker` exists (removing it first)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key: object, start: str, finish: str, **kwargs: object) -> None:
        if finish == "executing":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.marker)
                os.kill(os.getpid(), signal.SIGKILL)


class KillOn(WorkerPlugin):
    """Kills the worker process that starts a task on a file named `name`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def setup(self, worker: object) -> None:
        self.worker = worker

    def transition(self, key: object, start: str, finish: str, **kwargs: object) -> None:
        if finish == "executing":
            paths = self.worker.state.tasks[key].run_spec.args[0]
            if any(path.name == self.name for path in paths):
                os.kill(os.getpid(), signal.SIGKILL)
