"""Grouping a collection: k-means on song representations, scored against known labels."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score


def default_clusters(labels: Sequence[str | None]) -> int:
    """The number of distinct known labels, or sqrt(n / 2) (at least 2) if none is known."""
    known = {label for label in labels if label is not None}
    if len(known) >= 2:
        return len(known)
    return max(2, round(math.sqrt(len(labels) / 2)))


def cluster(vectors: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means of vectors (n, dim) -> cluster number per song, int (n,), numbered by size.

    Give unit-length vectors to cluster by cosine similarity, as the index searches.
    Cluster 0 is the largest; ties go to the cluster whose first song comes first.
    """
    if not 1 <= k <= len(vectors):
        raise ValueError(f"cannot make {k} clusters of {len(vectors)} songs")
    found = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(vectors)
    order = sorted(set(found), key=lambda c: (-np.sum(found == c), np.argmax(found == c)))
    renumber = {old: new for new, old in enumerate(order)}
    return np.array([renumber[c] for c in found], dtype=np.int64)


@dataclass(frozen=True)
class Agreement:
    """How well clusters match labels, over the `n_songs` songs that have a label."""

    n_songs: int
    purity: float
    nmi: float


def purity(labels: Sequence[str], clusters: Sequence[int]) -> float:
    """Fraction of songs whose label is the most common label of their cluster."""
    members: dict[int, Counter] = {}
    for label, c in zip(labels, clusters, strict=True):
        members.setdefault(c, Counter())[label] += 1
    return sum(counts.most_common(1)[0][1] for counts in members.values()) / len(labels)


def agreement(labels: Sequence[str | None], clusters: Sequence[int]) -> Agreement | None:
    """Purity and normalised mutual information of the labelled songs; None if none is."""
    pairs = [(label, c) for label, c in zip(labels, clusters, strict=True) if label is not None]
    if not pairs:
        return None
    known, groups = zip(*pairs, strict=True)
    return Agreement(
        len(pairs), purity(known, groups), float(normalized_mutual_info_score(known, groups))
    )
