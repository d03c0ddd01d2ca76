"""`kcnn embed MODEL FILE_OR_FOLDER... --out FILE`: song-level representations, one row per song."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from kcnn.atomic import atomic_file
from kcnn.cli.common import (
    add_cache_options,
    add_device_option,
    add_duration_option,
    add_quiet_option,
    add_worker_options,
    extract_or_fail,
    report_skipped,
    workers_of,
)
from kcnn.dataset import find_audio
from kcnn.errors import KcnnError


def add_parser(
    commands: argparse._SubParsersAction, name: str, summary: str
) -> argparse.ArgumentParser:
    p = commands.add_parser(name, help=summary, description=__doc__)
    p.add_argument("model", type=Path, help="model folder written by 'kcnn train'")
    p.add_argument(
        "inputs", type=Path, nargs="+", help="audio files or folders (searched recursively)"
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="FILE.npz (arrays 'paths' and 'vectors') or FILE.csv (path, then one column per unit)",
    )
    add_cache_options(p)
    add_device_option(p)
    add_duration_option(p)
    add_quiet_option(p)
    add_worker_options(p)
    p.set_defaults(run=run)
    return p


def write_embeddings(out: Path, paths: list[str], vectors: np.ndarray) -> None:
    """Write paths and vectors (n_songs, dim) as .npz or .csv, atomically."""
    suffix = out.suffix.lower()
    if suffix not in (".npz", ".csv"):
        raise KcnnError(f"{out}: the output must end in .npz or .csv")
    with atomic_file(out) as tmp:
        if suffix == ".npz":
            with tmp.open("wb") as handle:
                np.savez(handle, paths=np.asarray(paths), vectors=vectors)
        else:
            with tmp.open("w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
                writer = csv.writer(handle)
                writer.writerow(["path", *(f"h{j}" for j in range(vectors.shape[1]))])
                for path, row in zip(paths, vectors, strict=True):
                    writer.writerow([path, *(f"{v:.6g}" for v in row)])


def run(args: argparse.Namespace) -> int:
    from kcnn.model import MusicModel  # the stack, imported when the command runs

    model = MusicModel.load(args.model, args.device)
    paths = find_audio(args.inputs)
    batch = extract_or_fail(args, paths, model.feature_settings, model.min_frames, workers_of(args))
    vectors = model.embed(batch.features)
    write_embeddings(args.out, [str(paths[i]) for i in batch.kept], vectors)
    print(
        f"{len(batch.kept)} representations of {vectors.shape[1]} dimensions written to {args.out}"
    )
    report_skipped(batch)
    return 0
