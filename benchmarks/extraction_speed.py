"""Feature extraction of a collection on one and on several worker processes, cold cache.

    python benchmarks/extraction_speed.py [--data DIR] [--repeat 1 10] [--jobs 1 2] [--rounds 3]

For each size (the files of DATA, and the same list repeated K times: a collection K times
as large), extracts the features with `extract_batch` (default settings, minimum 4 frames)
into an empty cache folder: with 1 job in this process, with N jobs on a local Dask cluster
of N worker processes started for the run and closed after it. Prints a markdown table:
start-up and close of the cluster (worker imports included), extraction, total, speed-up
over 1 job, the CPU time of the extraction (all processes; the busiest one), and whether
every feature array equals the 1-job one. Each figure is from the best of `--rounds` runs,
taken in turn. On a machine that other jobs keep busy, the wall times say little (Linux
gives each session, not each process, its share of the cores): the busiest process's CPU
time is then what bounds the time on idle cores.
"""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kcnn.cache import FeatureCache
from kcnn.dataset import find_audio
from kcnn.extraction import BatchResult, extract_batch
from kcnn.features import FeatureSettings
from kcnn.threads import available_cores
from kcnn.workers import IN_PROCESS, Workers, local_cluster

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gtzan-mini"
SETTINGS = FeatureSettings()


def cpu_seconds() -> float:
    """User and system CPU time of this process."""
    times = os.times()
    return times.user + times.system


@dataclass
class Run:
    """Seconds of one run: start-up and close, extraction; CPU of all processes, the busiest."""

    overhead: float
    extraction: float
    cpu: float
    busiest: float
    result: BatchResult

    @property
    def total(self) -> float:
        return self.overhead + self.extraction


def timed_run(paths: Sequence[Path], jobs: int) -> Run:
    """One cold-cache run of `jobs` jobs."""
    with tempfile.TemporaryDirectory() as folder:
        cache = FeatureCache(folder, SETTINGS)
        if jobs == 1:
            started, cpu = time.perf_counter(), cpu_seconds()
            result = extract_batch(paths, SETTINGS, 4, cache, progress=False, workers=IN_PROCESS)
            cpu = cpu_seconds() - cpu
            return Run(0.0, time.perf_counter() - started, cpu, cpu, result)
        started = time.perf_counter()
        with local_cluster(jobs) as cluster, cluster.get_client() as client:
            client.run(importlib.import_module, "kcnn.extraction")
            before, cpu = client.run(cpu_seconds), cpu_seconds()
            ready = time.perf_counter()
            workers = Workers(scheduler=cluster.scheduler_address)
            result = extract_batch(paths, SETTINGS, 4, cache, progress=False, workers=workers)
            done = time.perf_counter()
            cpu = cpu_seconds() - cpu
            used = [seconds - before[worker] for worker, seconds in client.run(cpu_seconds).items()]
        overhead = ready - started + time.perf_counter() - done
        return Run(overhead, done - ready, cpu + sum(used), max([cpu, *used]), result)


def identical(a: BatchResult, b: BatchResult) -> bool:
    """Same files kept and skipped, same feature arrays."""
    return (
        a.kept == b.kept
        and [str(e) for e in a.skipped] == [str(e) for e in b.skipped]
        and all(
            list(x) == list(y) and all(np.array_equal(x[k], y[k]) for k in x)
            for x, y in zip(a.features, b.features, strict=True)
        )
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of audio files")
    parser.add_argument(
        "--repeat", type=int, nargs="+", default=[1, 10], help="sizes, as repeats of the files"
    )
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="jobs to compare")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, the best kept")
    args = parser.parse_args(argv)
    paths = find_audio([args.data])
    if not paths:
        parser.error(f"no audio files in {args.data}")
    for path in paths:  # every run then finds the files in the page cache
        path.read_bytes()
    extract_batch(paths[:1], SETTINGS, progress=False)  # warm-up: filterbanks, FFT plans

    load = os.getloadavg()[0]
    print(f"{len(paths)} files from {args.data}, {available_cores()} cores, cold cache")
    print(f"load average before: {load:.1f}\n")
    print(
        "| files | jobs | start-up + close (s) | extraction (s) | total (s) | speed-up "
        "| CPU, all (s) | CPU, busiest (s) | same |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for repeat in args.repeat:
        batch = paths * repeat
        best: dict[int, Run] = {}
        for _ in range(args.rounds):
            for jobs in args.jobs:
                run = timed_run(batch, jobs)
                if jobs not in best or run.total < best[jobs].total:
                    best[jobs] = run
        first = best[args.jobs[0]]
        for jobs in args.jobs:
            run = best[jobs]
            same = "yes" if identical(first.result, run.result) else "NO"
            print(
                f"| {len(batch)} | {jobs} | {run.overhead:.2f} | {run.extraction:.2f} "
                f"| {run.total:.2f} | {first.total / run.total:.2f}x | {run.cpu:.2f} "
                f"| {run.busiest:.2f} | {same} |",
                flush=True,
            )
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
