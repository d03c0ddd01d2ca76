"""Folds: stratified k-fold cross-validation (group-aware when songs have groups), or a split."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from kcnn.benchmark.datasets import Collection
from kcnn.errors import KcnnError


@dataclass(frozen=True)
class Fold:
    """Indices (int64, sorted) of the training and test songs of one fold."""

    train: np.ndarray
    test: np.ndarray


def cv_folds(labels: list[str], groups: list[str] | None, n_folds: int, seed: int) -> list[Fold]:
    """Stratified k-fold: every fold's test part has about 1/k of each label.

    With `groups` (e.g. artists), no group spans a fold's training and test parts
    (StratifiedGroupKFold; the balance is then as good as the groups allow).
    `seed` shuffles the assignment, so runs with other seeds get other folds.
    """
    if n_folds < 2:
        raise KcnnError(f"cross-validation needs at least 2 folds, got {n_folds}")
    label, fewest = min(Counter(labels).items(), key=lambda kv: kv[1])
    if fewest < n_folds:
        raise KcnnError(
            f"label {label!r} has {fewest} song(s), fewer than the {n_folds} folds; "
            f"use --folds {max(fewest, 2)} or fewer"
        )
    index = np.zeros(len(labels))
    if groups is None:
        splitter = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
        splits = splitter.split(index, labels)
    else:
        if len(set(groups)) < n_folds:
            raise KcnnError(f"{len(set(groups))} groups cannot make {n_folds} folds")
        splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
        splits = splitter.split(index, labels, groups)
    return [Fold(np.sort(tr), np.sort(te)) for tr, te in splits]


def fixed_split(test: tuple[bool, ...]) -> list[Fold]:
    """The one fold of a fixed split: `test[i]` says whether song i is a test song."""
    mask = np.asarray(test, dtype=bool)
    return [Fold(np.flatnonzero(~mask), np.flatnonzero(mask))]


def make_folds(collection: Collection, n_folds: int, seed: int) -> list[Fold]:
    """The folds of one run: the fixed split if the collection has one, else k-fold CV."""
    if collection.test is not None:
        folds = fixed_split(collection.test)
    else:
        folds = cv_folds(collection.files.labels, collection.files.groups, n_folds, seed)
    labels = np.asarray(collection.files.labels)
    for fold in folds:
        unseen = set(labels[fold.test]) - set(labels[fold.train])
        if unseen:
            raise KcnnError(
                f"test songs with label(s) {', '.join(sorted(unseen))} have no training songs"
            )
    return folds
