"""The report's pictures besides the t-SNE maps (`kcnn.maps` draws those): a confusion
matrix and the KCNN's learning curves, each written atomically as PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kcnn.atomic import atomic_file

# matplotlib is imported where a picture is drawn: most commands never draw one, and
# importing it costs every `kcnn` command a noticeable part of its start-up.
if TYPE_CHECKING:
    from matplotlib.figure import Figure


def save(figure: Figure, path: Path) -> None:
    """Write `figure` as PNG to `path` atomically."""
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def plot_confusion(names: Sequence[str], matrix: np.ndarray, title: str, path: Path) -> None:
    """Confusion counts (rows: true, columns: predicted), shaded by the share of each row."""
    from matplotlib.figure import Figure

    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 1.0 + 0.55 * len(names)
    figure = Figure(figsize=(size + 1.5, size))
    axes = figure.subplots()
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if share[i, j] > 0.6 else "black"
        axes.text(j, i, str(count), ha="center", va="center", fontsize=8, color=colour)
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(names)), names, fontsize=8)
    axes.set(xlabel="predicted", ylabel="true")
    axes.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the true label")
    save(figure, path)


def plot_learning_curves(curves: dict[str, dict[str, list[list[float]]]], path: Path) -> None:
    """Training cross-entropy per epoch: a panel per feature set, a line per network.

    curves: feature set -> network name -> loss curves (one per fold and run, of any
    length); the line is the mean of the fits still training, the band their range.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2 * len(curves), 3.6))
    axes = figure.subplots(1, len(curves), squeeze=False, sharey=True)[0]
    for ax, (features, networks) in zip(axes, curves.items(), strict=True):
        for name, runs in networks.items():
            losses = np.full((len(runs), max(map(len, runs))), np.nan)
            for row, curve in zip(losses, runs, strict=True):
                row[: len(curve)] = curve  # early stopping ends fits at different epochs
            epochs = np.arange(1, losses.shape[1] + 1)
            ax.plot(epochs, np.nanmean(losses, axis=0), label=f"{name} ({len(losses)} fits)")
            low, high = np.nanmin(losses, axis=0), np.nanmax(losses, axis=0)
            ax.fill_between(epochs, low, high, alpha=0.15)
        ax.set_title(features.upper(), fontsize=10)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("training cross-entropy")
    save(figure, path)
