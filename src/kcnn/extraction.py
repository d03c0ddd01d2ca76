"""From audio files to frame features: one file, a batch that skips bad files, an estimator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from tqdm.auto import tqdm

from kcnn.audio import check_length, load_audio
from kcnn.cache import FeatureCache
from kcnn.errors import AudioError
from kcnn.features import FeatureSettings, extract_features

Features = dict[str, np.ndarray]
"""Frame features of one song: feature type -> float32 array (n_frames, dim)."""


def min_samples(settings: FeatureSettings, min_frames: int) -> int:
    """Number of samples that give `min_frames` frames."""
    return settings.n_fft + (max(min_frames, 1) - 1) * settings.hop_length


def extract_file(
    path: str | Path,
    settings: FeatureSettings,
    min_frames: int = 1,
    cache: FeatureCache | None = None,
) -> Features:
    """Decode `path` and compute its frame features; raises AudioError on a bad file."""
    path = Path(path)
    if cache is not None and (cached := cache.get(path)) is not None:
        n = len(next(iter(cached.values())))
        if n >= min_frames:
            return cached
    y = load_audio(path, sr=settings.sr)
    check_length(path, y, min_samples(settings, min_frames), settings.sr)
    features = extract_features(y, settings)
    if cache is not None:
        cache.put(path, features)
    return features


@dataclass
class BatchResult:
    """Features of the files that could be used, their indices, and what was skipped."""

    features: list[Features] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    skipped: list[AudioError] = field(default_factory=list)


def extract_batch(
    paths: Sequence[str | Path],
    settings: FeatureSettings,
    min_frames: int = 1,
    cache: FeatureCache | None = None,
    progress: bool = True,
) -> BatchResult:
    """Extract features of many files, skipping (and recording) the ones that fail."""
    result = BatchResult()
    for i, path in enumerate(tqdm(paths, desc="features", unit="file", disable=not progress)):
        try:
            result.features.append(extract_file(path, settings, min_frames, cache))
        except AudioError as err:
            result.skipped.append(err)
        else:
            result.kept.append(i)
    return result


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """Audio file paths -> list of frame features (first stage of a kcnn pipeline).

    Nothing is learned; `transform` raises AudioError on the first bad file (use
    `extract_batch` to skip bad files instead).
    """

    def __init__(
        self,
        types: tuple[str, ...] = ("mel", "sfm", "scf"),
        n_mels: int = 40,
        fmax: float | None = None,
        min_frames: int = 1,
        cache_dir: str | None = None,
    ) -> None:
        self.types = types
        self.n_mels = n_mels
        self.fmax = fmax
        self.min_frames = min_frames
        self.cache_dir = cache_dir

    @property
    def settings(self) -> FeatureSettings:
        return FeatureSettings(types=tuple(self.types), n_mels=self.n_mels, fmax=self.fmax)

    def fit(self, X: Sequence[str | Path], y: object = None) -> FeatureExtractor:
        return self

    def transform(self, X: Sequence[str | Path]) -> list[Features]:
        settings = self.settings
        cache = None if self.cache_dir is None else FeatureCache(self.cache_dir, settings)
        return [extract_file(p, settings, self.min_frames, cache) for p in X]
