"""Options and output shared by the sub-commands."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kcnn.audio import MAX_DURATION
from kcnn.cache import FeatureCache, default_cache_dir, temporary_cache
from kcnn.config import DEVICES, SECTIONS, ModelConfig
from kcnn.errors import KcnnError
from kcnn.features import DEFAULT_SETTINGS, FeatureSettings
from kcnn.threads import available_cores, share_of_cores
from kcnn.workers import IN_PROCESS, Workers

if TYPE_CHECKING:
    from kcnn.extraction import BatchResult

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


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return _number(text, int, lambda v: v >= 0, "a whole number >= 0")


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


def add_types_option(parser: argparse.ArgumentParser) -> None:
    """--features: the feature types (`parse_types`)."""
    parser.add_argument(
        "--features", default="all", help="mel, sfm, scf, spec, comma-separated; all = mel,sfm,scf"
    )


def add_feature_options(parser: argparse.ArgumentParser) -> None:
    """--n-mels, --fmax, --absolute-mel and --view-rates."""
    d = DEFAULT_SETTINGS
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
        "--absolute-mel",
        dest="relative_mel",
        action="store_false",
        default=d.relative_mel,
        help="log mel as measured (default: each frame's log mel less its mean over the "
        "bands, which the recording's level and gain do not change)",
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


def feature_settings(args: argparse.Namespace, types: Sequence[str]) -> FeatureSettings:
    """The settings of feature `types` given by `add_feature_options`; a bad value is a
    KcnnError."""
    try:
        return FeatureSettings(
            types=tuple(types),
            n_mels=args.n_mels,
            fmax=args.fmax,
            relative_mel=args.relative_mel,
            view_rates=tuple(args.view_rates),
        )
    except ValueError as err:
        raise KcnnError(str(err)) from err


def _model_option(parser: argparse.ArgumentParser, flag: str, setting: str, **params: Any) -> None:
    """An option that sets `setting` ("stage.name") of a `ModelConfig`, by default to the
    config's; `model_config` reads it."""
    stage, name = setting.split(".")
    default = getattr(getattr(ModelConfig(), stage), name)
    parser.add_argument(
        flag,
        dest=setting,
        default=list(default) if isinstance(default, tuple) else default,
        **params,
    )


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The settings of a model (`ModelConfig`) but its feature types, with its defaults."""
    add_feature_options(p)
    _model_option(
        p,
        "--segment-frames",
        "words.segment_frames",
        type=positive_int,
        help="frames per audio word",
    )
    _model_option(
        p,
        "--phases",
        "words.phases",
        type=positive_int,
        help="word sequences per song, each starting a fraction of a word later (1: one)",
    )
    _model_option(
        p,
        "--components",
        "words.n_components",
        type=positive_int,
        help="PCA-whitened dimensions",
    )
    _model_option(
        p, "--words", "words.n_words", type=positive_int, help="codebook size per feature type"
    )
    _model_option(
        p,
        "--texture-parts",
        "words.texture_parts",
        type=non_negative_int,
        help="texture codes per audio word and feature type, read by the network's texture "
        "head (0: no texture head, the paper's network)",
    )
    _model_option(p, "--k", "kcnn.k", type=positive_int, help="k of k-max pooling")
    _model_option(
        p,
        "--conv-units",
        "kcnn.conv_units",
        type=positive_int,
        nargs="+",
        help="units per convolution layer",
    )
    _model_option(
        p,
        "--hidden-units",
        "kcnn.hidden_units",
        type=positive_int,
        nargs="+",
        help="units per sigmoid layer",
    )
    _model_option(p, "--epochs", "kcnn.epochs", type=positive_int, help="training epochs")
    _model_option(
        p,
        "--learning-rate",
        "kcnn.learning_rate",
        type=positive_float,
        help="SGD learning rate",
    )
    _model_option(
        p,
        "--lookup-learning-rate",
        "kcnn.lookup_learning_rate",
        type=non_negative_float,
        help="SGD learning rate of the lookup tables",
    )
    _model_option(
        p,
        "--freeze-lookup",
        "kcnn.freeze_embeddings",
        action="store_true",
        help="keep the lookup tables at the centroids (ULT)",
    )
    _model_option(
        p,
        "--dynamic-k",
        "kcnn.dynamic_k",
        action="store_true",
        help="k-max pooling after every lower convolution, k by song length",
    )
    _model_option(
        p,
        "--no-layer-norm",
        "kcnn.layer_norm",
        action="store_false",
        help="feed the pooled features to the sigmoid layer as they are (as in the paper)",
    )
    _model_option(
        p, "--dropout", "kcnn.dropout", type=fraction, help="dropout rate of the hidden layers"
    )
    _model_option(
        p,
        "--crop-words",
        "kcnn.crop_words",
        type=positive_int,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="lengths (audio words) of the random crops of songs trained on",
    )
    _model_option(
        p,
        "--crops-per-song",
        "kcnn.crops_per_song",
        type=positive_int,
        help="random crops of every song per epoch",
    )
    _model_option(
        p,
        "--patience",
        "kcnn.patience",
        type=positive_int,
        help="stop after this many epochs without a better validation loss",
    )
    _model_option(
        p,
        "--validation-fraction",
        "kcnn.validation_fraction",
        type=fraction,
        help="part of the training songs held out for early stopping (0: none)",
    )
    _model_option(p, "--svm-c", "svm.C", type=positive_float, help="C of the RBF SVM")


def model_config(args: argparse.Namespace, types: Sequence[str]) -> ModelConfig:
    """The config given by `add_model_options`, of feature `types`."""
    given = vars(args)
    try:
        sections = {
            stage: section.from_dict(
                {key.split(".", 1)[1]: v for key, v in given.items() if key.startswith(f"{stage}.")}
            )
            for stage, section in SECTIONS.items()
        }
    except ValueError as err:
        raise KcnnError(str(err)) from err
    return ModelConfig(feature_settings(args, types), **sections)


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
    from kcnn.training import resolve_device  # PyTorch, only when --device is given

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
    """--jobs and --scheduler: where features are extracted, and where `kcnn benchmark`
    fits its models (`workers_of`)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        metavar="N",
        help="processes extracting features, and fitting the models of 'kcnn benchmark' "
        f"(default: one per core, {available_cores()})",
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
    from kcnn.extraction import extract_batch

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
