"""Maps of a collection: a 2-D t-SNE layout of song representations, as PNG or interactive HTML.

Positions live in the unit square (aspect kept), so that a map drawn anywhere (matplotlib,
the SVG of `map.html`, the web page) uses them as they are. t-SNE cannot place a new song
on an existing map; `place` puts it at the similarity-weighted mean of the positions of
its nearest neighbours, which is where t-SNE's own attraction would pull it. A collection
of more than `MAP_SONGS` songs is mapped so: t-SNE lays out that many, drawn at random,
and `place` puts every other song among its neighbours (`kcnn.index.SongIndex`).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import numpy as np
import sklearn
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from kcnn.atomic import atomic_file, write_text

# matplotlib is imported where colours or a picture are made: most commands never make
# one, and importing it costs every `kcnn` command a noticeable part of its start-up.

NEIGHBOUR_MEMORY_MB = 64
"""Memory (MiB) for the distances that t-SNE computes at a time to find each song's
neighbours: scikit-learn's default, 1 GiB, is taken in full from about 11,000 songs."""
MAP_SONGS = 2_000
"""The most songs t-SNE lays out; the others of a larger collection are placed among them.
t-SNE's time and memory grow with the songs (a million would take days, on one core), and
more points than this only cover the ones below them on a map."""
PLACE_NEIGHBOURS = 5
"""Nearest laid-out songs whose positions place a song on a map."""
UNLABELLED = "(no label)"
UNLABELLED_COLOUR = "#9a9a9a"


def layout(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """t-SNE of vectors (n, dim) -> positions float32 (n, 2) in the unit square.

    Perplexity is 30, or (n - 1) / 3 for small collections; below 4 songs the songs are
    put on a line (t-SNE needs more points than its perplexity). t-SNE runs on one thread:
    on a busy machine its OpenMP threads made a 120-song map take 12 s instead of 0.3 s.
    """
    n = len(vectors)
    if n < 4:
        raw = np.column_stack([np.arange(n, dtype=np.float64), np.zeros(n)])
    else:
        tsne = TSNE(
            n_components=2,
            perplexity=min(30.0, (n - 1) / 3),
            metric="cosine",
            init="pca",
            random_state=seed,
        )
        with (
            threadpool_limits(limits=1),
            sklearn.config_context(working_memory=NEIGHBOUR_MEMORY_MB),
        ):
            raw = tsne.fit_transform(np.asarray(vectors, dtype=np.float32))
    return to_unit_square(raw)


def to_unit_square(points: np.ndarray) -> np.ndarray:
    """Shift and scale points (n, 2) into [0, 1]^2, keeping the aspect, centred."""
    points = np.asarray(points, dtype=np.float64)
    if not len(points):
        return np.empty((0, 2), dtype=np.float32)
    low, high = points.min(axis=0), points.max(axis=0)
    span = max(float((high - low).max()), 1e-12)
    return ((points - (low + high) / 2) / span + 0.5).astype(np.float32)


def place(positions: np.ndarray, rows: np.ndarray, similarities: np.ndarray) -> np.ndarray:
    """Map positions of new songs from their neighbours' rows in `positions` (n, 2) and
    cosine similarities, (m, k) each (or (k,) for one song): float32 (m, 2) (or (2,)), the
    mean of the neighbours' positions weighted by their similarity (floored at 1e-6)."""
    weights = np.clip(np.asarray(similarities, dtype=np.float64), 1e-6, None)
    near = positions[np.asarray(rows)]  # (..., k, 2)
    return ((near * weights[..., None]).sum(axis=-2) / weights.sum(axis=-1)[..., None]).astype(
        np.float32
    )


def group_colours(groups: Sequence[str | None]) -> dict[str, str]:
    """A colour (hex) per distinct group name, sorted; None is drawn grey as UNLABELLED."""
    import matplotlib
    from matplotlib.colors import to_hex

    names = sorted({g for g in groups if g is not None})
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    colours = {name: to_hex(cmap(i % cmap.N)) for i, name in enumerate(names)}
    if any(g is None for g in groups):
        colours[UNLABELLED] = UNLABELLED_COLOUR
    return colours


def map_data(
    positions: np.ndarray, groups: Sequence[str | None], paths: Sequence[str], title: str
) -> dict:
    """The JSON-ready map that `map.js` draws: points [x, y, group number], names, groups."""
    colours = group_colours(groups)
    number = {name: i for i, name in enumerate(colours)}
    return {
        "title": title,
        "groups": [{"name": name, "colour": colour} for name, colour in colours.items()],
        "points": [
            [round(float(x), 5), round(float(y), 5), number[UNLABELLED if g is None else g]]
            for (x, y), g in zip(positions, groups, strict=True)
        ],
        "names": list(paths),
    }


def map_script() -> str:
    """The JavaScript that draws a map (shared by map.html and the web page)."""
    return (files("kcnn.web") / "map.js").read_text(encoding="utf-8")


def write_html(path: str | Path, data: dict) -> None:
    """A self-contained interactive map (SVG; hovering a point shows its file), atomically."""
    payload = json.dumps(data).replace("</", "<\\/")
    title = html.escape(data["title"])
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
#map {{ width: min(90vw, 80vh); height: min(90vw, 80vh); border: 1px solid #ddd; }}
.legend span {{ margin-right: 1rem; white-space: nowrap; }}
.legend i {{ display: inline-block; width: .8rem; height: .8rem; border-radius: 50%;
  margin-right: .3rem; vertical-align: middle; }}
#map-info {{ min-height: 1.4em; font-family: monospace; }}
</style></head>
<body><h1>{title}</h1>
<div class="legend" id="legend"></div>
<p id="map-info">Hover over a point to see its file.</p>
<svg id="map" role="img" aria-label="map of the collection"></svg>
<script>{map_script()}</script>
<script>const data = {payload};
drawMap(document.getElementById("map"), data, document.getElementById("map-info"));
drawLegend(document.getElementById("legend"), data);</script>
</body></html>
"""
    write_text(path, page)


def write_png(path: str | Path, data: dict) -> None:
    """The map as a PNG (one colour per group, legend beside it), atomically."""
    from matplotlib.figure import Figure

    points = np.asarray(data["points"], dtype=np.float64).reshape(-1, 3)
    fig = Figure(figsize=(9, 7), dpi=120)
    ax = fig.subplots()
    for number, group in enumerate(data["groups"]):
        mine = points[points[:, 2] == number]
        ax.scatter(
            mine[:, 0], 1 - mine[:, 1], s=24, c=group["colour"], label=group["name"], alpha=0.85
        )
    ax.set(title=data["title"], xticks=[], yticks=[], aspect="equal")
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    if len(data["groups"]) > 1:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
