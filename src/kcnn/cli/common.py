"""Options and output shared by the sub-commands."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from kcnn.audio import MAX_DURATION
from kcnn.cache import FeatureCache, default_cache_dir, temporary_cache
from kcnn.errors import KcnnError
from kcnn.extraction import BatchResult, extract_batch
from kcnn.features import DEFAULT_SETTINGS, FeatureSettings
from kcnn.threads import available_cores, share_of_cores
from kcnn.training import DEVICES, resolve_device
from kcnn.workers import IN_PROCESS, Workers

FEATURE_SETS = {"all": ("mel", "sfm", "scf")}

N = TypeVar("N", int, float)


def _number(text: str, convert: Callable[[str], N], ok: Callable[[N], bool], expected: str) -> N:
    """`text` converted, if it is a number `ok` accepts; else an argparse error."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    return _number(text, int, lambda v: v >= 1, "a whole number >= 1")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _number(text, float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _number(text, float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


def fraction(text: str) -> float:
    """argparse type: a number from 0 up to, not including, 1."""
    return _number(text, float, lambda v: 0 <= v < 1, "a number from 0 up to (not including) 1")


def parse_types(text: str) -> tuple[str, ...]:
    """'mel,sfm' -> ('mel', 'sfm'); 'all' -> mel, sfm and scf."""
    types: list[str] = []
    for part in text.lower().split(","):
        for name in FEATURE_SETS.get(part.strip(), (part.strip(),)):
            if name and name not in types:
                types.append(name)
    return tuple(types)


def frequency_or_full(text: str) -> float | None:
    """argparse type: a frequency in Hz (> 0), or "full" for half the sample rate."""
    return None if text.lower() == "full" else positive_float(text)


def add_feature_options(parser: argparse.ArgumentParser) -> None:
    """--features, --n-mels, --fmax and --view-rates."""
    d = DEFAULT_SETTINGS
    parser.add_argument(
        "--features", default="all", help="mel, sfm, scf, spec, comma-separated; all = mel,sfm,scf"
    )
    parser.add_argument(
        "--n-mels", type=positive_int, default=d.n_mels, help=f"mel bands (default {d.n_mels})"
    )
    parser.add_argument(
        "--fmax",
        type=frequency_or_full,
        default=d.fmax,
        help=f"highest frequency (Hz) the features use, or 'full' (default {d.fmax:g}: "
        "copies sampled at 16 kHz give the same features)",
    )
    parser.add_argument(
        "--view-rates",
        type=positive_int,
        nargs="*",
        default=list(d.view_rates),
        help="also learn and predict from each song as a copy resampled to these rates (Hz) "
        "would sound, so that such copies get the same answers (default "
        f"{' '.join(map(str, d.view_rates))}; none: give the option without values)",
    )


def feature_settings(args: argparse.Namespace) -> FeatureSettings:
    """The feature settings given by `add_feature_options`; a bad value is a KcnnError."""
    try:
        return FeatureSettings(
            types=parse_types(args.features),
            n_mels=args.n_mels,
            fmax=args.fmax,
            view_rates=tuple(args.view_rates),
        )
    except ValueError as err:
        raise KcnnError(str(err)) from err


def add_cache_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--cache",
        type=Path,
        default=None,
        help=f"feature cache folder (default: $KCNN_CACHE_DIR or {default_cache_dir()})",
    )
    group.add_argument(
        "--no-cache",
        action="store_true",
        help="do not read or write cached features (they go to a temporary folder in $TMPDIR, "
        "removed at the end)",
    )


def device(text: str) -> str:
    """argparse type: a name of DEVICES that this machine has ("cuda" only with a GPU)."""
    if text not in DEVICES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(DEVICES)}, got {text!r}")
    try:
        resolve_device(text)
    except KcnnError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """--device: where the network trains and runs."""
    parser.add_argument(
        "--device",
        type=device,
        default="auto",
        metavar="{" + ",".join(DEVICES) + "}",
        help="where the network runs: a CUDA GPU (cuda), the CPU (cpu), or a GPU if there "
        "is one, else the CPU (auto, the default); the results agree within float tolerance",
    )


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def add_duration_option(parser: argparse.ArgumentParser) -> None:
    """--max-duration, in minutes; read by `extract_or_fail` (and `kcnn serve`)."""
    parser.add_argument(
        "--max-duration",
        type=positive_float,
        default=MAX_DURATION / 60,
        metavar="MINUTES",
        help=f"longest audio decoded (default {MAX_DURATION / 60:g}); longer files are skipped",
    )


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """--threads; `kcnn` applies it to its own process before the command runs."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="threads of PyTorch, OpenMP and BLAS in each process that computes (default: "
        f"the {available_cores()} cores divided among the processes computing at once)",
    )


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    """--jobs and --scheduler: where features are extracted (`workers_of`)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"processes extracting features (default: one per core, {available_cores()})",
    )
    group.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="extract features on the running Dask cluster of this scheduler "
        "(tcp://HOST:PORT); its workers must see the files and the cache at the same paths",
    )


def workers_of(args: argparse.Namespace) -> Workers:
    """The workers given by `add_worker_options` and --threads."""
    if args.scheduler is not None:
        return Workers(threads=args.threads or 1, scheduler=args.scheduler)
    jobs = args.jobs or available_cores()
    return Workers(jobs=jobs, threads=args.threads or share_of_cores(jobs))


def make_cache(args: argparse.Namespace, settings: FeatureSettings) -> FeatureCache:
    """The cache of --cache (default: `default_cache_dir`); with --no-cache, a temporary
    one: the features of a batch are kept on disk either way."""
    if args.no_cache:
        return temporary_cache(settings)
    return FeatureCache(args.cache or default_cache_dir(), settings)


def extract_or_fail(
    args: argparse.Namespace,
    paths: Sequence[Path],
    settings: FeatureSettings,
    min_frames: int,
    workers: Workers = IN_PROCESS,
) -> BatchResult:
    """Extract features of `paths` on `workers`, skipping bad files; fail if none could be used.

    The features stay on disk (`StoredFeatures`, see `make_cache`). The caller lists the
    skipped files at the end with `report_skipped`.
    """
    result = extract_batch(
        paths,
        settings,
        min_frames,
        make_cache(args, settings),
        progress=not args.quiet,
        max_duration=args.max_duration * 60,
        workers=workers,
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
