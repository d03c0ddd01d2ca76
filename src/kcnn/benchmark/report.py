"""The paper's table from a benchmark's state: accuracy per method and feature set, and time.

A run's accuracy is pooled over its folds (correct test songs / test songs, every song
tested once per run under cross-validation); a cell is the mean and the sample standard
deviation over the runs whose folds are all finished, with their number n.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kcnn.benchmark.choices import METHODS
from kcnn.benchmark.methods import GROUPS
from kcnn.benchmark.state import unit_key

GROUP_NAMES = {
    "sc": METHODS["sc-svm"],
    "ae": METHODS["ae-svm"],
    "dbn": METHODS["dbn-svm"],
    "kcnn-ult": METHODS["kcnn-ult"],
    "kcnn": "KCNN: one network for its softmax and its SVM",
    "kcnn-k1": METHODS["kcnn-k1-svm"],
    "mfcc": METHODS["mfcc-svm"],
}
"""Group -> what its time covers, in the time table."""


@dataclass(frozen=True)
class Cell:
    """One method on one feature set: accuracy (0..1) of each complete run."""

    method: str
    features: str
    runs: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.runs)) if self.runs else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over runs (None with fewer than 2 runs)."""
        return float(np.std(self.runs, ddof=1)) if self.n > 1 else None


def run_accuracy(
    units: dict[str, Any], labels: Sequence[str], method: str, features: str, run: int, folds: int
) -> float | None:
    """Accuracy of `method` pooled over the folds of `run`; None unless every fold is done."""
    correct = total = 0
    for fold in range(folds):
        unit = units.get(unit_key(run, fold, features))
        if unit is None or method not in unit["predictions"]:
            return None
        truth = [labels[i] for i in unit["test"]]
        correct += sum(t == p for t, p in zip(truth, unit["predictions"][method], strict=True))
        total += len(truth)
    return correct / total


def cells(
    units: dict[str, Any],
    labels: Sequence[str],
    columns: dict[str, Sequence[str]],
    runs: int,
    folds: int,
) -> list[Cell]:
    """Every (method, feature set) of `columns` (method -> its feature sets), in that order."""
    found = []
    for method, sets in columns.items():
        for features in sets:
            accs = (run_accuracy(units, labels, method, features, r, folds) for r in range(runs))
            found.append(Cell(method, features, tuple(a for a in accs if a is not None)))
    return found


def best(found: Sequence[Cell]) -> Cell | None:
    """The cell with the highest mean accuracy (None if no cell has a finished run)."""
    scored = [c for c in found if c.n]
    return max(scored, key=lambda c: c.mean or 0.0) if scored else None


def pooled_confusion(
    units: dict[str, Any], labels: Sequence[str], cell: Cell, runs: int, folds: int
) -> tuple[list[str], np.ndarray]:
    """Confusion counts (rows: true, columns: predicted) of `cell` summed over runs and folds."""
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    for run in range(runs):
        for fold in range(folds):
            unit = units.get(unit_key(run, fold, cell.features))
            if unit is None or cell.method not in unit["predictions"]:
                continue
            for i, predicted in zip(unit["test"], unit["predictions"][cell.method], strict=True):
                matrix[index[labels[i]], index[predicted]] += 1
    return names, matrix


def seconds_per_fold(units: dict[str, Any], feature_sets: Sequence[str]) -> dict[str, dict]:
    """Mean wall seconds per fold: step ("words" or a group) -> feature set -> seconds."""
    table: dict[str, dict[str, list[float]]] = {}
    for key, unit in units.items():
        features = key.split("/")[2]
        if features not in feature_sets:
            continue
        if "words_seconds" in unit:
            table.setdefault("words", {}).setdefault(features, []).append(unit["words_seconds"])
        for group, done in unit["groups"].items():
            table.setdefault(group, {}).setdefault(features, []).append(done["seconds"])
    order = ["words", *(g.name for g in GROUPS)]
    return {
        step: {f: float(np.mean(v)) for f, v in table[step].items()}
        for step in order
        if step in table
    }


def format_cell(cell: Cell | None) -> str:
    """'75.30 ± 1.20 (n=10)' in percent; '—' for no finished run."""
    if cell is None or cell.mean is None:
        return "—"
    spread = "—" if cell.std is None else f"{100 * cell.std:.2f}"
    return f"{100 * cell.mean:.2f} ± {spread} (n={cell.n})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def accuracy_markdown(found: Sequence[Cell], feature_sets: Sequence[str]) -> str:
    """Rows: methods; columns: feature sets (upper case, as the paper)."""
    by_key = {(c.method, c.features): c for c in found}
    methods = list(dict.fromkeys(c.method for c in found))
    rows = [[METHODS[m], *(format_cell(by_key.get((m, f))) for f in feature_sets)] for m in methods]
    return markdown_table(["Method", *(f.upper() for f in feature_sets)], rows)


def time_markdown(times: dict[str, dict], feature_sets: Sequence[str]) -> str:
    """Rows: steps; columns: feature sets; values: mean seconds per fold."""
    names = {"words": "Audio words: fit (shared)", **GROUP_NAMES}
    rows = [
        [names[step], *(f"{per[f]:.1f}" if f in per else "—" for f in feature_sets)]
        for step, per in times.items()
    ]
    totals = [sum(per.get(f, 0.0) for per in times.values()) for f in feature_sets]
    rows.append(["Total", *(f"{t:.1f}" if t else "—" for t in totals)])
    return markdown_table(["Step", *(f.upper() for f in feature_sets)], rows)


def cell_record(cell: Cell) -> dict[str, Any]:
    """A cell as JSON-ready numbers (percent)."""
    pct = [round(100 * a, 4) for a in cell.runs]
    return {
        "method": cell.method,
        "name": METHODS[cell.method],
        "features": cell.features,
        "accuracy_mean_pct": None if cell.mean is None else round(100 * cell.mean, 4),
        "accuracy_std_pct": None if cell.std is None else round(100 * cell.std, 4),
        "n_runs": cell.n,
        "run_accuracies_pct": pct,
    }


def results_json(found: Sequence[Cell], context: dict[str, Any]) -> str:
    return json.dumps({**context, "cells": [cell_record(c) for c in found]}, indent=2)


def results_csv(found: Sequence[Cell]) -> str:
    out = io.StringIO()
    fields = ["method", "name", "features", "accuracy_mean_pct", "accuracy_std_pct", "n_runs"]
    writer = csv.DictWriter(out, [*fields, "run_accuracies_pct"], lineterminator="\n")
    writer.writeheader()
    for cell in found:
        record = cell_record(cell)
        record["run_accuracies_pct"] = ";".join(str(a) for a in record["run_accuracies_pct"])
        writer.writerow(record)
    return out.getvalue()


def results_markdown(found: Sequence[Cell], columns: Sequence[str], context: dict[str, Any]) -> str:
    """The whole results.md: header (data, protocol, settings, software), table, time."""
    songs = context["songs"]
    counts = ", ".join(f"{label} {n}" for label, n in songs["per_label"].items())
    settings = ", ".join(f"{k} = {v}" for k, v in context["settings"].items())
    versions = ", ".join(f"{k} {v}" for k, v in context["versions"].items())
    lines = [
        "# kcnn benchmark: genre classification accuracy (%)",
        "",
        f"- Data: `{context['data']}`: {songs['n']} songs ({counts})",
        f"- Protocol: {context['protocol']}",
        f"- Settings: {settings}",
        f"- Software: {versions}",
        f"- Machine: {context['machine']}",
        *(f"- Note: {note}" for note in context["notes"]),
        "",
        accuracy_markdown(found, columns),
    ]
    top = best(found)
    if top is not None:
        lines += ["", f"Best: {METHODS[top.method]} on {top.features.upper()}, {format_cell(top)}."]
    lines += [
        "",
        "## Time per fold (wall seconds, mean over the folds and runs done)",
        "",
        time_markdown(context["seconds_per_fold"], columns),
        "",
        f"Frame features of all songs: {context['feature_seconds']:.1f} s (with the cache).",
        f"Models fitted so far: {context['models_seconds']:.0f} s in all.",
    ]
    return "\n".join(lines) + "\n"
