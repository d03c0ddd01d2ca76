"""`kcnn map INDEX --out map.png [map.html]`: a 2-D t-SNE map of the songs of an index.

The layout is made when the index is built or updated (t-SNE of the representations,
cosine distance). PNG is a picture; HTML is a self-contained interactive map where
hovering a point shows its file. Points are coloured by label (the default when labels
are known) or by k-means cluster (as 'kcnn cluster' with the same --clusters and --seed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kcnn.cli.cluster import add_cluster_options, cluster_index
from kcnn.errors import KcnnError


def add_parser(
    commands: argparse._SubParsersAction, name: str, summary: str
) -> argparse.ArgumentParser:
    p = commands.add_parser(name, help=summary, description=__doc__)
    p.add_argument("index", type=Path, help="index folder written by 'kcnn index'")
    p.add_argument(
        "--out", type=Path, nargs="+", required=True, help="FILE.png and/or FILE.html to write"
    )
    p.add_argument(
        "--colour",
        choices=("label", "cluster"),
        default=None,
        help="colour by label or by k-means cluster (default: label if known)",
    )
    add_cluster_options(p)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from kcnn.index import SongIndex  # the stack, imported when the command runs
    from kcnn.maps import map_data, write_html, write_png

    writers = {".png": write_png, ".html": write_html}
    bad = [str(out) for out in args.out if out.suffix.lower() not in writers]
    if bad:
        raise KcnnError(f"{', '.join(bad)}: a map must end in .png or .html")
    index = SongIndex.load(args.index)
    colour = args.colour or ("label" if any(index.labels) else "cluster")
    if colour == "cluster":
        clusters = cluster_index(index, args.clusters, args.seed)
        width = len(str(clusters.max()))
        groups = [f"cluster {c:0{width}d}" for c in clusters]
    else:
        groups = index.labels
    title = f"{args.index.name}: {len(index)} songs, coloured by {colour}"
    data = map_data(index.positions, groups, [s.path for s in index.songs], title)
    for out in args.out:
        writers[out.suffix.lower()](out, data)
        print(f"map written to {out}")
    return 0
