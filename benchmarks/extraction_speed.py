"""Feature extraction of a collection on one and on several worker processes, cold cache.

    python benchmarks/extraction_speed.py [--data DIR] [--repeat 1 10] [--jobs 1 2] [--rounds 3]

For each size (the files of DATA, and the same list repeated K times: a collection K times
as large), extracts the features with `extract_batch` (default settings, minimum 4 frames)
into an empty cache folder: with 1 job in this process, with N jobs on a local Dask cluster
of N worker processes started for the run and closed after it. Prints a markdown table:
start-up and close of the cluster (worker imports included), extraction, total, speed-up
over 1 job, and whether every feature array equals the 1-job one. Each figure is the best
of `--rounds` runs, taken in turn: on a machine that other jobs share, the best run is the
one that they disturbed least.
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from collections.abc import Sequence
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


def timed_run(paths: Sequence[Path], jobs: int) -> tuple[float, float, BatchResult]:
    """(start-up and close seconds, extraction seconds, result) of one cold-cache run."""
    with tempfile.TemporaryDirectory() as folder:
        cache = FeatureCache(folder, SETTINGS)
        if jobs == 1:
            started = time.perf_counter()
            result = extract_batch(paths, SETTINGS, 4, cache, progress=False, workers=IN_PROCESS)
            return 0.0, time.perf_counter() - started, result
        started = time.perf_counter()
        with local_cluster(jobs) as cluster:
            with cluster.get_client() as client:
                client.run(importlib.import_module, "kcnn.extraction")
            ready = time.perf_counter()
            workers = Workers(scheduler=cluster.scheduler_address)
            result = extract_batch(paths, SETTINGS, 4, cache, progress=False, workers=workers)
            done = time.perf_counter()
        overhead = ready - started + time.perf_counter() - done
        return overhead, done - ready, result


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

    print(f"{len(paths)} files from {args.data}, {available_cores()} cores, cold cache\n")
    print("| files | jobs | start-up + close (s) | extraction (s) | total (s) | speed-up | same |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for repeat in args.repeat:
        batch = paths * repeat
        best: dict[int, tuple[float, float]] = {}
        results: dict[int, BatchResult] = {}
        for _ in range(args.rounds):
            for jobs in args.jobs:
                overhead, seconds, results[jobs] = timed_run(batch, jobs)
                if jobs not in best or overhead + seconds < sum(best[jobs]):
                    best[jobs] = (overhead, seconds)
        first = args.jobs[0]
        for jobs in args.jobs:
            overhead, seconds = best[jobs]
            speed_up = sum(best[first]) / (overhead + seconds)
            same = "yes" if identical(results[first], results[jobs]) else "NO"
            print(
                f"| {len(batch)} | {jobs} | {overhead:.2f} | {seconds:.2f} "
                f"| {overhead + seconds:.2f} | {speed_up:.2f}x | {same} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
