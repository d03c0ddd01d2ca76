"""`kcnn benchmark DATA --out REPORT`: the paper's comparison (Tables 2 and 3, Figure 3).

Runs every method on every feature set under cross-validation or a fixed split and writes
results.md, results.csv, results.json, t-SNE maps, a confusion matrix and learning curves
to REPORT. Re-run with the same arguments to resume an interrupted benchmark.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kcnn.benchmark.choices import METHODS, CodeSettings
from kcnn.benchmark.datasets import SPLITS
from kcnn.cache import default_cache_dir
from kcnn.cli.common import (
    add_cache_options,
    add_device_option,
    add_model_options,
    add_quiet_option,
    add_worker_options,
    model_config,
    positive_int,
    workers_of,
)
from kcnn.features import FeatureSettings


def add_parser(
    commands: argparse._SubParsersAction, name: str, summary: str
) -> argparse.ArgumentParser:
    p = commands.add_parser(
        name,
        help=summary,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "data",
        type=Path,
        help="GTZAN (genres/), ISMIR2004Genre, a folder per label, or a CSV path,label[,group]",
    )
    p.add_argument("--out", type=Path, required=True, help="report folder (also resume state)")
    p.add_argument(
        "--protocol",
        choices=("cv", "split"),
        default="cv",
        help="stratified k-fold cross-validation (default) or a fixed train/test split",
    )
    p.add_argument(
        "--split",
        default=None,
        help=f"with --protocol split: {', '.join(SPLITS)}, or a file listing the test songs",
    )
    p.add_argument("--folds", type=int, default=10, help="folds of cross-validation (10)")
    p.add_argument("--runs", type=positive_int, default=10, help="runs with different seeds (10)")
    p.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated, from: {', '.join(METHODS)} (default: all)",
    )
    p.add_argument(
        "--features",
        default="mel,sfm,scf,all",
        help="feature sets, comma-separated: mel, sfm, scf, spec, all (= mel+sfm+scf)",
    )
    add_model_options(p)
    p.add_argument(
        "--code-units",
        type=positive_int,
        default=CodeSettings().units,
        help="atoms / units of the sparse coding, autoencoder and DBN codes",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of run 1; run r uses seed + r - 1")
    p.add_argument(
        "--restart", action="store_true", help="discard the state of an earlier benchmark in REPORT"
    )
    add_device_option(p)
    add_cache_options(p)
    add_quiet_option(p)
    add_worker_options(p)
    p.set_defaults(run=run)
    return p


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))


def run(args: argparse.Namespace) -> int:
    from kcnn.benchmark.methods import MethodSettings
    from kcnn.benchmark.report import accuracy_markdown
    from kcnn.benchmark.runner import BenchmarkSettings, run_benchmark

    settings = BenchmarkSettings(
        protocol=args.protocol,
        split=args.split,
        folds=args.folds,
        runs=args.runs,
        methods=_names(args.methods),
        feature_sets=_names(args.features),
        seed=args.seed,
        learners=MethodSettings(
            model_config(args, FeatureSettings.types),
            CodeSettings(units=args.code_units),
            args.device,
        ),
    )
    cache = None if args.no_cache else args.cache or default_cache_dir()
    result = run_benchmark(
        args.data,
        args.out,
        settings,
        cache,
        progress=not args.quiet,
        restart=args.restart,
        workers=workers_of(args),
    )
    print(accuracy_markdown(result.cells, settings.unit_sets()))
    print(f"\nreport written to {result.out}")
    return 0
