"""Scores of predicted labels against true ones: accuracy, per-class recall, confusion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score


def score(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, per-class recall and the confusion matrix (rows: true, columns: predicted)."""
    labels = list(labels)
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "n_songs": len(y_true),
        "labels": labels,
        "per_class_recall": {lab: float(r) for lab, r in zip(labels, recall, strict=True)},
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def format_score(report: dict) -> str:
    """A plain-text rendering of `score`'s result."""
    labels = report["labels"]
    corner = "true \\ pred"
    width = max(len(lab) for lab in [*labels, corner])
    lines = [
        f"accuracy: {report['accuracy']:.3f} on {report['n_songs']} songs",
        "",
        "recall per class:",
    ]
    lines += [f"  {lab:<{width}}  {report['per_class_recall'][lab]:.3f}" for lab in labels]
    lines += ["", "confusion (rows: true, columns: predicted):"]
    short = [lab[:5] for lab in labels]
    lines.append(f"  {corner:<{width}}  " + " ".join(f"{s:>5}" for s in short))
    for lab, row in zip(labels, np.asarray(report["confusion"]), strict=True):
        lines.append(f"  {lab:<{width}}  " + " ".join(f"{v:>5d}" for v in row))
    return "\n".join(lines)
