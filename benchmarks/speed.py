"""Every speed figure of kcnn on this machine, in one run.

1. `kcnn train DATA` with a cold feature cache: alone, then two trainings at once (each
   with its own cache); the slow-down of each beside the other (a fair share of the cores
   is 2x when both want all of them).
2. The network: time per song-epoch and the first convolution's GFLOP/s
   (`network_speed.py`, with the threads a training uses).
3. Feature extraction on 1 and on 2 worker processes (`extraction_speed.py`): the files of
   DATA, and 10 times as many (the list repeated), where starting the workers counts less.
4. `kcnn benchmark DATA --folds F --runs 1` (every method and feature set): wall time alone
   and beside `kcnn train` run back to back, and its time per fold, method and feature set.

Run it with nothing else on the machine. Prints markdown.

    python benchmarks/speed.py [--data DIR] [--folds 5] [--skip benchmark ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kcnn.threads import available_cores

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gtzan-mini"
PARTS = ("train", "network", "extraction", "benchmark")
KCNN = [sys.executable, "-m", "kcnn.cli.main"]


def train_command(data: Path, work: Path) -> list[str]:
    """README's `kcnn train`, writing into `work` (model and a cold cache)."""
    return [*KCNN, "train", str(data), "--out", str(work / "model")]


def timed_together(commands: list[list[str]], folders: list[Path]) -> list[float]:
    """Start `commands` at once (each with its folder's cache); wall seconds of each."""
    start = time.perf_counter()
    running = [
        subprocess.Popen([*cmd, "--cache", str(folder / "cache"), "-q"], stdout=subprocess.DEVNULL)
        for cmd, folder in zip(commands, folders, strict=True)
    ]
    seconds = []
    for process in running:
        if process.wait() != 0:
            raise SystemExit(f"failed: {' '.join(process.args)}")  # type: ignore[arg-type]
        seconds.append(time.perf_counter() - start)
    return seconds


def train_times(data: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(tmp) / name for name in ("alone", "first", "second")]
        (alone,) = timed_together([train_command(data, folders[0])], folders[:1])
        pair = timed_together([train_command(data, f) for f in folders[1:]], folders[1:])
    print(f"## `kcnn train {data.name}`, cold cache ({available_cores()} cores)\n")
    print("| run | wall (s) | slow-down |")
    print("|---|---:|---:|")
    print(f"| alone | {alone:.0f} | 1.00x |")
    for i, seconds in enumerate(pair, 1):
        print(f"| beside a second training, #{i} | {seconds:.0f} | {seconds / alone:.2f}x |")
    print()


def script(name: str, *options: str) -> None:
    """Run a benchmark script of this folder; its tables go to our output."""
    sys.stdout.flush()
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *options], check=True)
    print()


def timed_benchmark(data: Path, folds: int, report: Path, beside: Path | None) -> float:
    """Wall seconds of `kcnn benchmark DATA --folds F --runs 1` into `report`; with `beside`
    (a work folder), `kcnn train DATA` runs back to back beside it the whole time, each
    training writing into `beside` with a warm cache, and is stopped when the benchmark ends."""
    cmd = [*KCNN, "benchmark", str(data), "--out", str(report), "--folds", str(folds)]
    start = time.perf_counter()
    bench = subprocess.Popen([*cmd, "--runs", "1", "-q"], stdout=subprocess.DEVNULL)
    training: subprocess.Popen | None = None
    while bench.poll() is None:
        if beside is not None and (training is None or training.poll() is not None):
            train = [*train_command(data, beside), "--cache", str(beside / "cache"), "-q"]
            training = subprocess.Popen(train, stdout=subprocess.DEVNULL)
        time.sleep(0.5)
    seconds = time.perf_counter() - start
    if training is not None:
        training.terminate()
        training.wait()
    if bench.returncode != 0:
        raise SystemExit(f"failed ({bench.returncode}): {' '.join(cmd)}")
    return seconds


def benchmark_time(data: Path, folds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        reports = [Path(tmp) / name for name in ("alone", "beside")]
        alone = timed_benchmark(data, folds, reports[0], None)
        beside = timed_benchmark(data, folds, reports[1], Path(tmp) / "training")
        results = (reports[0] / "results.md").read_text()
    print(f"## `kcnn benchmark {data.name} --folds {folds} --runs 1`\n")
    print("| run | wall (min) | slow-down |")
    print("|---|---:|---:|")
    print(f"| alone | {alone / 60:.1f} | 1.00x |")
    print(f"| beside `kcnn train` run back to back | {beside / 60:.1f} | {beside / alone:.2f}x |")
    print("\nAlone, time per fold:\n")
    times = results[results.index("## Time per fold") :]
    print(times.partition("\n")[2].strip(), "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled collection")
    parser.add_argument("--folds", type=int, default=5, help="folds of the benchmark (5)")
    parser.add_argument("--skip", nargs="+", choices=PARTS, default=[], help="parts to leave out")
    args = parser.parse_args()
    if "train" not in args.skip:
        train_times(args.data)
    if "network" not in args.skip:
        print("## The network\n")
        script("network_speed.py", "--threads", str(available_cores()), "--repeats", "2")
    if "extraction" not in args.skip:
        print("## Feature extraction\n")
        script("extraction_speed.py", "--data", str(args.data), "--repeat", "1", "10")
    if "benchmark" not in args.skip:
        benchmark_time(args.data, args.folds)


if __name__ == "__main__":
    main()
