"""Time, peak memory and held-out accuracy of `kcnn train` on gtzan-mini, over seeds.

Each seed runs the real command in a fresh process with an empty feature cache (so
decoding and feature extraction are timed too), then a second time with the cache
filled. Prints a markdown table.

    python benchmarks/train_gtzan_mini.py [--data DIR] [--seeds 0 1 2] [-- extra train options]
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gtzan-mini"


def run_train(data: Path, seed: int, cache: Path, extra: list[str]) -> tuple[float, float, dict]:
    """Run `kcnn train` once; returns wall seconds, peak RSS in MiB and the accuracies."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "kcnn.cli.main", "train", str(data), "--out", out]
        cmd += ["--seed", str(seed), "--cache", str(cache), "-q", *extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - start
        peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    found = re.findall(r"held-out \((\w+)\): accuracy: ([0-9.]+)", done.stdout)
    return seconds, peak, {name: float(acc) for name, acc in found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("extra", nargs="*", help="options passed on to kcnn train (after --)")
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as cache:
            cold = run_train(args.data, seed, Path(cache), args.extra)
            warm = run_train(args.data, seed, Path(cache), args.extra)
        rows.append((seed, cold, warm))
        print(f"seed {seed}: {cold[0]:.0f} s cold, {warm[0]:.0f} s cached", file=sys.stderr)
    print(
        f"`kcnn train {args.data.name}` (80/20 stratified held-out split, {' '.join(args.extra)})\n"
    )
    print(
        "| seed | time, cold cache (s) | time, features cached (s) | peak memory (MiB) "
        "| held-out accuracy, SVM | held-out accuracy, softmax |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for seed, cold, warm in rows:
        acc = cold[2]
        print(
            f"| {seed} | {cold[0]:.0f} | {warm[0]:.0f} | {max(cold[1], warm[1]):.0f} "
            f"| {acc.get('svm', float('nan')):.3f} | {acc.get('softmax', float('nan')):.3f} |"
        )
    for name in ("svm", "softmax"):
        accs = [cold[2][name] for _, cold, _ in rows if name in cold[2]]
        if len(accs) > 1:
            print(
                f"\n{name}: mean {statistics.mean(accs):.3f}, std {statistics.stdev(accs):.3f}, "
                f"n = {len(accs)}",
                end="",
            )
    print()


if __name__ == "__main__":
    main()
