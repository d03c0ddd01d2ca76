"""Where a batch of per-file tasks runs: in this process, or on a Dask cluster.

`Workers(jobs=N)` runs the tasks on N processes of this machine: a local Dask cluster
started for the batch and closed after it. Starting one takes a few seconds (each worker
process imports the libraries), as long as computing the features of a hundred clips of
WAV: the cluster gets at most one process per `BYTES_PER_PROCESS` of files to compute,
and a batch smaller than twice that runs in this process, without a cluster.
`Workers(scheduler=ADDRESS)` runs them on the running Dask cluster of that scheduler.
Files go to the workers in runs of a few. Either way a worker that dies mid-task costs
the run a retry on another worker; the files of a run whose workers died
`distributed.scheduler.allowed-failures` + 1 times (4 by default) are tried again one at a
time, alone on the cluster, and a file that kills its workers as often is reported as a
bad file.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tqdm.auto import tqdm

from kcnn.errors import AudioError, KcnnError
from kcnn.threads import limit_threads

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

BYTES_PER_PROCESS = 128 * 2**20
"""A local cluster gets one worker process per this many bytes of files, at most `jobs`."""

CHUNK_FILES = 8
"""Files per task on a cluster, at most: sending each file alone costs a few ms of CPU."""

CHUNKS_PER_SLOT = 4
"""Tasks per worker thread, at least, while that leaves one file per task or more."""

CONNECT_TIMEOUT = 10
"""Seconds to wait for the scheduler given by `Workers.scheduler`."""

R = TypeVar("R")


@dataclass(frozen=True)
class Workers:
    """Processes that run a batch: `jobs` on this machine, or the cluster at `scheduler`.

    threads: threads of the numerical libraries in each worker process.
    """

    jobs: int = 1
    threads: int = 1
    scheduler: str | None = None

    def processes_for(self, paths: Sequence[Path]) -> int:
        """Local worker processes for `paths` (0 with a scheduler; 1: this process)."""
        if self.scheduler is not None:
            return 0
        return max(1, min(self.jobs, sum(map(_size, paths)) // BYTES_PER_PROCESS))


def _size(path: Path) -> int:
    """Bytes in the file `path` (0 if it cannot be read)."""
    try:
        return path.stat().st_size
    except (OSError, ValueError):
        return 0


IN_PROCESS = Workers()
"""Every task in this process."""


def map_files(
    task: Callable[[Path], R | AudioError],
    paths: Sequence[Path],
    workers: Workers = IN_PROCESS,
    bar: tqdm | None = None,
) -> list[R | AudioError]:
    """`task` of each path, in the order of `paths`; `bar` advances as each one finishes.

    `task` returns an AudioError for a bad file rather than raising it.
    """
    if not paths:
        return []
    processes = workers.processes_for(paths)
    if processes == 1:
        results = []
        for path in paths:
            results.append(task(path))
            if bar is not None:
                bar.update()
        return results
    with _client(workers, processes) as client:
        return _map_on(client, functools.partial(_in_worker, task, workers.threads), paths, bar)


def _in_worker(task: Callable[[Path], R], threads: int, paths: Sequence[Path]) -> list[R]:
    """`task` of each of `paths` in a worker process, whose libraries use `threads` threads."""
    _limit_once(threads)
    return [task(path) for path in paths]


_limit_once = functools.cache(limit_threads)


def _chunks(n: int, slots: int) -> list[range]:
    """0..n-1 in runs of at most CHUNK_FILES, at least CHUNKS_PER_SLOT per slot if n allows."""
    size = max(1, min(CHUNK_FILES, n // (CHUNKS_PER_SLOT * slots)))
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


def _map_on(
    client: Client,
    task: Callable[[Sequence[Path]], list[R]],
    paths: Sequence[Path],
    bar: tqdm | None,
) -> list[R | AudioError]:
    """`task` of runs of `paths` on the cluster; the files of runs whose workers kept dying
    are then tried one at a time, alone on the cluster, so that only a file that kills
    its workers itself is reported."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    results: list = [None] * len(paths)
    suspects: list[int] = []

    def done(run: range, outcomes: list) -> None:
        for i, outcome in zip(run, outcomes, strict=True):
            results[i] = outcome
        if bar is not None:
            bar.update(len(run))

    slots = max(1, sum(client.nthreads().values()))
    runs = {
        client.submit(task, [paths[i] for i in run], pure=False): run
        for run in _chunks(len(paths), slots)
    }
    for future in as_completed(runs):
        try:
            done(runs[future], future.result())
        except KilledWorker:
            suspects.extend(runs[future])
        future.release()  # the worker may forget the result
    for i in suspects:
        try:
            outcomes = client.submit(task, [paths[i]], pure=False).result()
        except KilledWorker as err:
            tries = err.args[2] + 1
            cause = f"the process reading it died ({tries} {'try' if tries == 1 else 'tries'})"
            outcomes = [AudioError(paths[i], cause)]
        done(range(i, i + 1), outcomes)
    return results


@contextlib.contextmanager
def _client(workers: Workers, processes: int) -> Iterator[Client]:
    """A client of the cluster at `workers.scheduler`, or of a new local one."""
    from distributed import Client

    if workers.scheduler is None:
        with local_cluster(processes) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(workers.scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, ValueError, TypeError) as err:
        cause = " ".join(str(err).split()) or type(err).__name__
        raise KcnnError(f"{workers.scheduler}: no Dask scheduler answers ({cause})") from err
    with client:
        yield client


@contextlib.contextmanager
def local_cluster(processes: int) -> Iterator[LocalCluster]:
    """A Dask cluster of `processes` one-thread worker processes on this machine.

    Set for batches of files: the workers keep the memory they free for the next file
    (Dask's MALLOC_TRIM_THRESHOLD_ made extraction 1.5 times as costly), and neither
    profile themselves nor watch their memory (one file at a time needs little), which
    nearly halves the CPU the cluster takes besides the tasks. Closed on exit; the environment
    variables that Dask sets in this process for its workers are then put back.
    """
    import dask
    from distributed import LocalCluster

    environ = {
        **dask.config.get("distributed.nanny.pre-spawn-environ"),
        "MALLOC_TRIM_THRESHOLD_": None,
    }
    saved = {name: os.environ.get(name) for name in [*environ, "PYTHONHASHSEED"]}
    settings = {
        "distributed.nanny.pre-spawn-environ": environ,
        "distributed.worker.profile.enabled": False,
        "distributed.admin.system-monitor.interval": "5s",
    }
    try:
        with (
            dask.config.set(settings),
            LocalCluster(
                n_workers=processes,
                threads_per_worker=1,
                processes=True,
                memory_limit=0,
                dashboard_address=None,
                silence_logs=logging.CRITICAL,
            ) as cluster,
        ):
            yield cluster
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
