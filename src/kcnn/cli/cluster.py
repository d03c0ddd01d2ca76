"""`kcnn cluster INDEX [--clusters K]`: group the songs of an index with k-means.

Songs are clustered by the similarity the index searches by (k-means on the standardised,
unit-length representations). K defaults to the number of known labels. Where labels are known,
prints the purity and normalised mutual information of the clusters against them.
Writes path,label,cluster as CSV.
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kcnn.atomic import atomic_file
from kcnn.cli.common import positive_int
from kcnn.errors import KcnnError

if TYPE_CHECKING:
    from kcnn.index import SongIndex


def add_parser(
    commands: argparse._SubParsersAction, name: str, summary: str
) -> argparse.ArgumentParser:
    p = commands.add_parser(name, help=summary, description=__doc__)
    p.add_argument("index", type=Path, help="index folder written by 'kcnn index'")
    add_cluster_options(p)
    p.add_argument(
        "--out", type=Path, default=None, help="CSV to write (default: INDEX-clusters.csv)"
    )
    p.set_defaults(run=run)
    return p


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--clusters",
        type=positive_int,
        default=None,
        help="number of clusters (default: the number of labels)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of k-means (default 0)")


def cluster_index(index: SongIndex, k: int | None, seed: int) -> np.ndarray:
    """Cluster number per song of `index`, int (n_songs,)."""
    from kcnn.clustering import cluster, default_clusters

    if k is None:
        k = default_clusters(index.labels)
    if k > len(index):
        raise KcnnError(f"--clusters must be at most the {len(index)} songs, got {k}")
    return cluster(index.comparable(index.vectors), k, seed)


def run(args: argparse.Namespace) -> int:
    from kcnn.clustering import agreement  # the stack, imported when the command runs
    from kcnn.index import SongIndex

    index = SongIndex.load(args.index)
    clusters = cluster_index(index, args.clusters, args.seed)
    out = args.out or args.index.with_name(f"{args.index.name}-clusters.csv")
    with (
        atomic_file(out) as tmp,
        tmp.open("w", newline="", encoding="utf-8", errors="surrogateescape") as handle,
    ):
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "cluster"])
        for song, c in zip(index.songs, clusters, strict=True):
            writer.writerow([song.path, song.label or "", int(c)])
    k = int(clusters.max()) + 1
    print(f"{k} clusters of {len(index)} songs")
    print(f"{'cluster':>7}  {'songs':>5}  most common label")
    for c in range(k):
        members = [label for label, m in zip(index.labels, clusters, strict=True) if m == c]
        known = Counter(label for label in members if label is not None).most_common(1)
        common = f"{known[0][0]} ({known[0][1]}/{len(members)})" if known else "-"
        print(f"{c:>7}  {len(members):>5}  {common}")
    score = agreement(index.labels, clusters)
    if score is not None:
        print(
            f"against the labels of {score.n_songs} songs: purity {score.purity:.3f}, "
            f"normalised mutual information {score.nmi:.3f}"
        )
    print(f"assignment written to {out}")
    return 0
