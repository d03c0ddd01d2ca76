"""`kcnn extract DATA --out FEATURES`: compute and cache frame features for later runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from kcnn.cache import CACHE
from kcnn.cli.common import (
    add_duration_option,
    add_feature_options,
    add_quiet_option,
    add_types_option,
    add_worker_options,
    extract_or_fail,
    feature_settings,
    parse_types,
    report_skipped,
    workers_of,
)
from kcnn.dataset import find_audio


def add_parser(
    commands: argparse._SubParsersAction, name: str, summary: str
) -> argparse.ArgumentParser:
    p = commands.add_parser(name, help=summary, description=__doc__)
    p.add_argument(
        "inputs", type=Path, nargs="+", help="audio files or folders (searched recursively)"
    )
    p.add_argument(
        "--out", type=Path, required=True, help="cache folder; pass it to train as --cache"
    )
    add_types_option(p)
    add_feature_options(p)
    add_duration_option(p)
    add_quiet_option(p)
    add_worker_options(p)
    p.set_defaults(run=run, no_cache=False)
    return p


def run(args: argparse.Namespace) -> int:
    CACHE.check(args.out)
    settings = feature_settings(args, parse_types(args.features))
    args.cache = args.out
    paths = find_audio(args.inputs)
    batch = extract_or_fail(args, paths, settings, 1, workers_of(args))
    frames = sum(batch.frames)
    print(f"features of {len(batch.kept)} files ({frames} frames) cached in {args.out}")
    report_skipped(batch)
    return 0
