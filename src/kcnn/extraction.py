"""From audio files to frame features: one file, a batch that skips bad files, an estimator.

A batch with a feature cache keeps the features on disk, one entry per song, and reads
each song back when it is used (`StoredFeatures`), so that no stage holds the features of
more than a song or two at a time, however many songs there are.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from pathlib import Path
from typing import ClassVar, overload

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval
from tqdm.auto import tqdm

from kcnn.audio import MAX_DURATION, check_length, load_audio
from kcnn.cache import FeatureCache
from kcnn.errors import AudioError
from kcnn.features import DEFAULT_SETTINGS, FeatureSettings, extract_features
from kcnn.workers import IN_PROCESS, Workers, map_files

Features = dict[str, np.ndarray]
"""Frame features of one song: feature type -> float32 array (n_frames, dim)."""


def min_samples(settings: FeatureSettings, min_frames: int) -> int:
    """Number of samples that give `min_frames` frames."""
    return settings.n_fft + (max(min_frames, 1) - 1) * settings.hop_length


def n_frames(features: Features) -> int:
    """Frames of one song's features."""
    return len(next(iter(features.values())))


def cached_features(
    cache: FeatureCache | None, path: str | Path, min_frames: int = 1
) -> Features | None:
    """The features of `path` in `cache`, if there with at least `min_frames` frames."""
    cached = None if cache is None else cache.get(path)
    if cached is not None and n_frames(cached) >= min_frames:
        return cached
    return None


def cached_frames(cache: FeatureCache | None, path: str | Path, min_frames: int = 1) -> int | None:
    """Frames of the features of `path` in `cache`, if there with at least `min_frames`
    (found without reading the features)."""
    frames = None if cache is None else cache.frames(path)
    return frames if frames is not None and frames >= min_frames else None


def compute_file(
    path: str | Path,
    settings: FeatureSettings,
    min_frames: int = 1,
    cache: FeatureCache | None = None,
    max_duration: float = MAX_DURATION,
) -> Features:
    """Decode `path` (at most `max_duration` seconds), compute its frame features, cache them.

    Raises AudioError on a bad file.
    """
    path = Path(path)
    y = load_audio(path, settings.sr, max_duration)
    check_length(path, y, min_samples(settings, min_frames), settings.sr)
    features = extract_features(y, settings)
    if cache is not None:
        # A cache that cannot take the entry (a full disk, say) only costs time.
        with contextlib.suppress(OSError):
            cache.put(path, features)
    return features


def extract_file(
    path: str | Path,
    settings: FeatureSettings,
    min_frames: int = 1,
    cache: FeatureCache | None = None,
    max_duration: float = MAX_DURATION,
) -> Features:
    """The features of `path`: from `cache` if there, else computed (`compute_file`).

    Raises AudioError on a bad file.
    """
    if (cached := cached_features(cache, path, min_frames)) is not None:
        return cached
    return compute_file(path, settings, min_frames, cache, max_duration)


def compute_or_error(path: Path, keep: bool, **params: object) -> Features | int | AudioError:
    """`compute_file(path, **params)`: the features if `keep`, else only their number of
    frames (the features are in the cache); or the AudioError that says why it cannot be used.
    """
    try:
        features = compute_file(path, **params)
    except AudioError as err:
        return err
    return features if keep else n_frames(features)


class StoredFeatures(Sequence[Features]):
    """The features of songs in a feature cache, each read from disk when indexed.

    A song whose entry has gone or cannot be read (a cache that refused it, say) is
    computed again, and raises AudioError if it can no longer be used. A slice, or
    `subset`, is a StoredFeatures too: nothing is read before a song is indexed.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        cache: FeatureCache,
        min_frames: int = 1,
        max_duration: float = MAX_DURATION,
    ) -> None:
        self.paths = list(paths)
        self.cache = cache
        self.min_frames = min_frames
        self.max_duration = max_duration

    def __len__(self) -> int:
        return len(self.paths)

    @overload
    def __getitem__(self, i: int) -> Features: ...

    @overload
    def __getitem__(self, i: slice) -> StoredFeatures: ...

    def __getitem__(self, i: int | slice) -> Features | StoredFeatures:
        if isinstance(i, slice):
            return self.subset(range(len(self))[i])
        return extract_file(
            self.paths[i], self.cache.settings, self.min_frames, self.cache, self.max_duration
        )

    def subset(self, indices: Iterable[int]) -> StoredFeatures:
        """The songs at `indices`, in that order."""
        return StoredFeatures(
            [self.paths[i] for i in indices], self.cache, self.min_frames, self.max_duration
        )


def subset(features: Sequence[Features], indices: Iterable[int]) -> Sequence[Features]:
    """The songs of `features` at `indices`, in that order: still on disk if stored there."""
    if isinstance(features, StoredFeatures):
        return features.subset(indices)
    return [features[i] for i in indices]


@dataclass
class BatchResult:
    """Features of the files that could be used, their indices and frames, and what was
    skipped. `features` is a StoredFeatures if the batch had a cache, else a list."""

    features: Sequence[Features] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    skipped: list[AudioError] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)


def extract_batch(
    paths: Sequence[str | Path],
    settings: FeatureSettings,
    min_frames: int = 1,
    cache: FeatureCache | None = None,
    progress: bool = True,
    max_duration: float = MAX_DURATION,
    workers: Workers = IN_PROCESS,
) -> BatchResult:
    """Extract features of many files, skipping (and recording) the ones that fail.

    Files already in `cache` are not read; the other files are computed by `workers`
    (see kcnn.workers), and cached by them. With a cache the features stay on disk (see
    `StoredFeatures`) and the workers send back only their sizes; without one they are
    held in memory. The result keeps the order of `paths`.
    """
    outcomes: list[Features | int | AudioError | None] = [None] * len(paths)
    with tqdm(total=len(paths), desc="features", unit="file", disable=not progress) as bar:
        todo = []
        for i, path in enumerate(paths):
            outcomes[i] = cached_frames(cache, path, min_frames)
            if outcomes[i] is None:
                todo.append(i)
            else:
                bar.update()
        task = functools.partial(
            compute_or_error,
            keep=cache is None,
            settings=settings,
            min_frames=min_frames,
            cache=cache,
            max_duration=max_duration,
        )
        computed = map_files(task, [Path(paths[i]) for i in todo], workers, bar)
    for i, outcome in zip(todo, computed, strict=True):
        outcomes[i] = outcome
    result = BatchResult()
    kept_outcomes = []
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, AudioError):
            result.skipped.append(outcome)
        else:
            kept_outcomes.append(outcome)
            result.kept.append(i)
    if cache is None:
        result.features = kept_outcomes
        result.frames = [n_frames(features) for features in kept_outcomes]
    else:
        kept_paths = [Path(paths[i]) for i in result.kept]
        result.features = StoredFeatures(kept_paths, cache, min_frames, max_duration)
        result.frames = kept_outcomes
    return result


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """Audio file paths -> list of frame features (first stage of a kcnn pipeline).

    Nothing is learned; `transform` raises AudioError on the first bad file (use
    `extract_batch` to skip bad files instead) and on one longer than `max_duration` seconds.
    """

    _parameter_constraints: ClassVar[dict] = {
        "types": [tuple, list],
        "n_mels": [Interval(Integral, 1, None, closed="left")],
        "fmax": [Interval(Real, 0, None, closed="neither"), None],
        "relative_mel": ["boolean"],
        "view_rates": [tuple, list],
        "sr": [Interval(Integral, 1, None, closed="left")],
        "n_fft": [Interval(Integral, 1, None, closed="left")],
        "hop_length": [Interval(Integral, 1, None, closed="left")],
        "min_frames": [Interval(Integral, 1, None, closed="left")],
        "cache_dir": [str, os.PathLike, None],
        "max_duration": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        types: tuple[str, ...] = DEFAULT_SETTINGS.types,
        n_mels: int = DEFAULT_SETTINGS.n_mels,
        fmax: float | None = DEFAULT_SETTINGS.fmax,
        relative_mel: bool = DEFAULT_SETTINGS.relative_mel,
        view_rates: tuple[float, ...] = DEFAULT_SETTINGS.view_rates,
        sr: int = DEFAULT_SETTINGS.sr,
        n_fft: int = DEFAULT_SETTINGS.n_fft,
        hop_length: int = DEFAULT_SETTINGS.hop_length,
        min_frames: int = 1,
        cache_dir: str | None = None,
        max_duration: float = MAX_DURATION,
    ) -> None:
        self.types = types
        self.n_mels = n_mels
        self.fmax = fmax
        self.relative_mel = relative_mel
        self.view_rates = view_rates
        self.sr = sr
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.min_frames = min_frames
        self.cache_dir = cache_dir
        self.max_duration = max_duration

    @classmethod
    def from_settings(cls, settings: FeatureSettings, **params: object) -> FeatureExtractor:
        """The extractor of `settings`."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(settings)}, **params)

    @property
    def settings(self) -> FeatureSettings:
        return FeatureSettings(**{f.name: getattr(self, f.name) for f in fields(FeatureSettings)})

    def fit(self, X: Sequence[str | Path], y: object = None) -> FeatureExtractor:
        self._validate_params()
        return self

    def transform(self, X: Sequence[str | Path]) -> list[Features]:
        settings = self.settings
        cache = None if self.cache_dir is None else FeatureCache(self.cache_dir, settings)
        return [extract_file(p, settings, self.min_frames, cache, self.max_duration) for p in X]
