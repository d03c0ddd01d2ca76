"""`kcnn similar INDEX QUERY [-n 10]`: the songs of an index most similar to a song.

Similarity is the cosine of the two songs' representations (1: the same direction).
A song of the index is never returned as its own neighbour. An indexed, unchanged
query is not embedded again; any other is embedded with the index's model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kcnn.cli.common import (
    add_cache_options,
    add_device_option,
    add_duration_option,
    add_quiet_option,
    extract_or_fail,
    positive_int,
    report_skipped,
)
from kcnn.errors import KcnnError, printable

if TYPE_CHECKING:
    from kcnn.index import Neighbour, SongIndex


def add_parser(
    commands: argparse._SubParsersAction, name: str, summary: str
) -> argparse.ArgumentParser:
    p = commands.add_parser(name, help=summary, description=__doc__)
    p.add_argument("index", type=Path, help="index folder written by 'kcnn index'")
    p.add_argument("query", type=Path, help="audio file")
    p.add_argument("-n", type=positive_int, default=10, help="number of songs (default 10)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p.add_argument(
        "--model", type=Path, default=None, help="model folder (default: the index's own)"
    )
    add_cache_options(p)
    add_device_option(p)
    add_duration_option(p)
    add_quiet_option(p)
    p.set_defaults(run=run)
    return p


def query_vector(args: argparse.Namespace, index: SongIndex) -> np.ndarray:
    """The query's representation (dim,): from the index if current, else embedded."""
    from kcnn.model import MusicModel

    if index.is_current(args.query):
        return index.vectors[index.row_of(args.query)]
    model_dir = args.model or Path(index.model_path)
    if not model_dir.is_dir():
        raise KcnnError(f"{model_dir}: the index's model is not there; give its place with --model")
    index.check_model(model_dir)
    model = MusicModel.load(model_dir, args.device)
    batch = extract_or_fail(args, [args.query], model.feature_settings, model.min_frames)
    report_skipped(batch)
    return model.embed(batch.features)[0]


def print_table(query: Path, neighbours: list[Neighbour]) -> None:
    print(f"songs most similar to {printable(query)}:")
    width = max([5, *(len(n.label or "") for n in neighbours)])
    print(f"{'#':>3}  similarity  {'label':<{width}}  path")
    for rank, n in enumerate(neighbours, start=1):
        print(f"{rank:>3}  {n.similarity:>10.3f}  {n.label or '-':<{width}}  {printable(n.path)}")


def run(args: argparse.Namespace) -> int:
    from kcnn.index import SongIndex  # the stack, imported when the command runs

    index = SongIndex.load(args.index)
    vector = query_vector(args, index)
    neighbours = index.search(vector[None], args.n, exclude=[index.row_of(args.query)])[0]
    if args.format == "json":
        rows = [
            {
                "rank": rank,
                "path": printable(n.path),
                "label": n.label,
                "similarity": round(n.similarity, 4),
            }
            for rank, n in enumerate(neighbours, start=1)
        ]
        json.dump({"query": printable(args.query), "neighbours": rows}, sys.stdout, indent=2)
        print()
    else:
        print_table(args.query, neighbours)
    return 0
