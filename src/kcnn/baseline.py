"""The representation a practitioner tries first: MFCC statistics over the whole song."""

from __future__ import annotations

from collections.abc import Sequence

import librosa
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags

from kcnn.extraction import Features


def mfcc_statistics(mfcc: np.ndarray) -> np.ndarray:
    """MFCCs (n_frames, n_mfcc) -> mean and std of them and of their deltas, (4 * n_mfcc,)."""
    delta = librosa.feature.delta(mfcc.T, width=9, mode="nearest").T
    return np.concatenate([mfcc.mean(0), mfcc.std(0), delta.mean(0), delta.std(0)]).astype(
        np.float32
    )


class MFCCStatistics(TransformerMixin, BaseEstimator):
    """Frame features with an "mfcc" type -> song vectors float32 (n_songs, 4 * n_mfcc).

    Nothing is learned; pair it with a scaler and an SVM.
    """

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags

    def fit(self, X: Sequence[Features], y: object = None) -> MFCCStatistics:
        return self

    def transform(self, X: Sequence[Features]) -> np.ndarray:
        return np.stack([mfcc_statistics(song["mfcc"]) for song in X])
