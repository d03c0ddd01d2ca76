"""Options and output shared by the sub-commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kcnn.cache import FeatureCache, default_cache_dir
from kcnn.errors import KcnnError
from kcnn.extraction import BatchResult, extract_batch
from kcnn.features import FeatureSettings

FEATURE_SETS = {"all": ("mel", "sfm", "scf")}


def parse_types(text: str) -> tuple[str, ...]:
    """'mel,sfm' -> ('mel', 'sfm'); 'all' -> mel, sfm and scf."""
    types: list[str] = []
    for part in text.lower().split(","):
        for name in FEATURE_SETS.get(part.strip(), (part.strip(),)):
            if name and name not in types:
                types.append(name)
    return tuple(types)


def add_cache_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--cache",
        type=Path,
        default=None,
        help=f"feature cache folder (default: $KCNN_CACHE_DIR or {default_cache_dir()})",
    )
    group.add_argument(
        "--no-cache", action="store_true", help="do not read or write cached features"
    )


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def make_cache(args: argparse.Namespace, settings: FeatureSettings) -> FeatureCache | None:
    if args.no_cache:
        return None
    return FeatureCache(args.cache or default_cache_dir(), settings)


def extract_or_fail(
    args: argparse.Namespace, paths: Sequence[Path], settings: FeatureSettings, min_frames: int
) -> BatchResult:
    """Extract features of `paths`, skipping bad files; fail if none could be used.

    The caller lists the skipped files at the end with `report_skipped`.
    """
    result = extract_batch(
        paths, settings, min_frames, make_cache(args, settings), progress=not args.quiet
    )
    if not result.kept:
        report_skipped(result)
        raise KcnnError(f"none of the {len(paths)} files could be used")
    return result


def report_skipped(result: BatchResult) -> None:
    """List the skipped files and their causes on standard error."""
    if result.skipped:
        print(f"skipped {len(result.skipped)} file(s):", file=sys.stderr)
        for err in result.skipped:
            print(f"  {err}", file=sys.stderr)
