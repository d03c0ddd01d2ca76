"""Peak memory of `kcnn train` and `kcnn index` as the collection grows.

    python benchmarks/memory_scale.py --work DIR [--songs 1000 20000] [--seconds 10]
        [--train-options "--epochs 1 --test-size 0"]

Makes the synthetic songs of `benchmarks/synthetic_songs.py` (in DIR/songs, or
`--collection`; kept for later runs), then for each size N trains a model on the first N
songs and indexes them with it, each command a process of its own, on one thread and one
job, with an empty feature cache per size (DIR/cache-N: `train` extracts, `index` reads the
features `train` stored); SONGS is DIR/songs/songs-N.csv, the first N songs:

    kcnn train SONGS --out DIR/model-N --threads 1 --jobs 1 -q --cache DIR/cache-N OPTIONS
    kcnn index DIR/model-N SONGS --out DIR/index-N --threads 1 --jobs 1 -q --cache DIR/cache-N

Prints a markdown table of each command's peak resident memory (the largest of the process
and of any process it started, from the kernel's accounting) and wall time, and the ratio
of the peaks at the largest and the smallest size.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from synthetic_songs import DEFAULT_DATA, first_songs, make

from kcnn.cache import is_cache
from kcnn.index import INDEX

KCNN = [sys.executable, "-m", "kcnn.cli.main"]


def measure(command: list[str]) -> tuple[float, float]:
    """Run `command`; its peak resident memory (MiB) and wall time (s). Fails if it fails."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"})
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({os.waitstatus_to_exitcode(status)}): {shlex.join(command)}")
    return usage.ru_maxrss / 1024, seconds  # Linux: ru_maxrss in KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for songs and outputs")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled clips to mix")
    parser.add_argument("--collection", type=Path, help="folder of the songs (default WORK/songs)")
    parser.add_argument("--songs", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each song")
    parser.add_argument(
        "--train-options",
        default="--epochs 1 --test-size 0",
        help="more options of kcnn train, as one string",
    )
    args = parser.parse_args()
    sizes = sorted(args.songs)
    collection = args.collection or args.work / "songs"
    manifest = make(args.data, collection, sizes[-1], args.seconds)
    rows = []
    for n in sizes:
        songs = str(first_songs(manifest, n))
        cache, model, index = (args.work / f"{name}-{n}" for name in ("cache", "model", "index"))
        for folder in (cache, index):  # made by an earlier run of this script: start afresh
            if is_cache(folder) or INDEX.holds(folder):
                shutil.rmtree(folder)
        common = ["--threads", "1", "--jobs", "1", "-q", "--cache", str(cache)]
        train = [*KCNN, "train", songs, "--out", str(model), *common]
        train += shlex.split(args.train_options)
        index_cmd = [*KCNN, "index", str(model), songs, "--out", str(index), *common]
        print(f"{n} songs: {shlex.join(train)}", file=sys.stderr)
        train_peak, train_seconds = measure(train)
        print(f"{n} songs: {shlex.join(index_cmd)}", file=sys.stderr)
        index_peak, index_seconds = measure(index_cmd)
        rows.append((n, train_peak, train_seconds, index_peak, index_seconds))
    print(f"\n{args.seconds:g}-second songs; kcnn train options: {args.train_options}\n")
    print(
        "| songs | train: peak memory (MiB) | train: wall (s) | index: peak memory (MiB) "
        "| index: wall (s) |"
    )
    print("|---:|---:|---:|---:|---:|")
    for n, tp, ts, ip, is_ in rows:
        print(f"| {n:,} | {tp:,.0f} | {ts:,.0f} | {ip:,.0f} | {is_:,.0f} |")
    first, last = rows[0], rows[-1]
    print(
        f"\npeak memory at {last[0]:,} songs / at {first[0]:,}: "
        f"train {last[1] / first[1]:.2f}x, index {last[3] / first[3]:.2f}x"
    )


if __name__ == "__main__":
    main()
