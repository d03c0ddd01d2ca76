"""Slow `kcnn` commands whose output fixtures need, run in the background from the start.

A test module registers, under the name of a fixture, the command that makes what the
fixture needs (`command`). When the session starts, the commands of the fixtures that its
selected tests use run one after another, each in its own `kcnn` process, in the order
the tests need them: the tests before run meanwhile on the other core. The fixture waits
for its command's output (`Jobs.output`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

Command = Callable[[Path], list[object]]
"""The `kcnn` arguments of a command that writes its output in the given (empty) folder."""

COMMANDS: dict[str, Command] = {}
TIMEOUT = 600
"""Seconds a fixture waits for its command."""


def command(fixture: str) -> Callable[[Command], Command]:
    """Register a command whose output the fixture named `fixture` uses."""

    def register(make: Command) -> Command:
        COMMANDS[fixture] = make
        return make

    return register


@dataclass
class Job:
    name: str
    args: list[str]
    work: Path
    done: threading.Event = field(default_factory=threading.Event)
    returncode: int | None = None
    output: str = ""


class Jobs:
    """The registered commands of `fixtures` (in that order), run in a background thread."""

    def __init__(self, fixtures: Iterable[str], folder: Path, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        self._jobs: dict[str, Job] = {}
        for name in fixtures:
            work = folder / name
            work.mkdir(parents=True)
            args = [str(a) for a in COMMANDS[name](work)]
            self._jobs[name] = Job(name, args, work)
        self._stopped = False
        self._running: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for job in self._jobs.values():
            # a command killed by a signal, from outside (the tests send none), runs again once
            for _ in range(2):
                with self._lock:
                    if self._stopped:
                        return
                    self._running = subprocess.Popen(
                        [sys.executable, "-m", "kcnn.cli.main", *job.args],
                        env=self._env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                    )
                job.output += self._running.communicate()[0]
                job.returncode = self._running.returncode
                if job.returncode >= 0:
                    break
                job.output += f"(killed by signal {-job.returncode})\n"
            job.done.set()

    def output(self, fixture: str) -> Path:
        """The folder in which the command of `fixture` wrote, once it has succeeded."""
        job = self._jobs[fixture]
        assert job.done.wait(TIMEOUT), f"kcnn {' '.join(job.args)}: still running"
        assert job.returncode == 0, (
            f"kcnn {' '.join(job.args)}: exit {job.returncode}\n{job.output}"
        )
        return job.work

    def stop(self) -> None:
        """Kill the command running, if any, and start no other."""
        with self._lock:
            self._stopped = True
            if self._running is not None and self._running.poll() is None:
                self._running.kill()
        self._thread.join(timeout=30)


def environment(cache: Path) -> dict[str, str]:
    """The environment of background commands: this session's feature cache, one thread
    (the tests run on the other core)."""
    return {**os.environ, "KCNN_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
