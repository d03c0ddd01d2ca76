"""Audio words: segments of consecutive frames, PCA-whitened, quantised by a k-means codebook."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import ClassVar

import faiss
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.metrics import pairwise_distances_argmin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from kcnn.config import TEXTURE_CODES, WordsSettings
from kcnn.extraction import Features
from kcnn.features import split_views


def segments(frames: np.ndarray, n_frames: int) -> np.ndarray:
    """Concatenate each run of `n_frames` consecutive frames (no overlap).

    frames: (n_total, dim) -> (n_total // n_frames, n_frames * dim); a tail shorter
    than a segment is dropped.
    """
    n_seg = len(frames) // n_frames
    return frames[: n_seg * n_frames].reshape(n_seg, n_frames * frames.shape[1])


def texture_quantiser(white: np.ndarray, n_parts: int, seed: int) -> np.ndarray:
    """Product quantiser of whitened segments (n, c): the c dimensions (zero-padded to a
    multiple of `n_parts`) cut into `n_parts` parts of `ceil(c / n_parts)`, each part
    quantised by k-means (faiss) to at most `TEXTURE_CODES` centroids.

    Returns the centroids, float32 (n_parts, TEXTURE_CODES, width); with fewer segments
    than codes, the rows past them repeat the first (never chosen: ties go to the first).
    """
    width = math.ceil(white.shape[1] / n_parts)
    parts = split_parts(white, n_parts, width)
    n_codes = min(TEXTURE_CODES, len(white))
    centroids = np.zeros((n_parts, TEXTURE_CODES, width), dtype=np.float32)
    for p, part in enumerate(parts):
        kmeans = faiss.Kmeans(width, n_codes, niter=20, seed=seed + p, min_points_per_centroid=1)
        kmeans.train(np.ascontiguousarray(part, dtype=np.float32))
        centroids[p, :n_codes] = kmeans.centroids
        centroids[p, n_codes:] = kmeans.centroids[0]
    return centroids


def split_parts(white: np.ndarray, n_parts: int, width: int) -> np.ndarray:
    """Whitened segments (n, c) -> (n_parts, n, width), the dimensions zero-padded."""
    padded = np.pad(white, ((0, 0), (0, n_parts * width - white.shape[1])))
    return padded.reshape(len(white), n_parts, width).transpose(1, 0, 2)


def texture_codes(white: np.ndarray, quantiser: np.ndarray) -> np.ndarray:
    """Whitened segments (n, c) -> their texture codes (n_parts, n): in each part, the
    index of the nearest of `quantiser`'s centroids (n_parts, TEXTURE_CODES, width)."""
    n_parts, _, width = quantiser.shape
    parts = split_parts(white, n_parts, width)  # (n_parts, n, width)
    # squared distance less |x|^2 (the same for every code): |c|^2 - 2 x.c
    distance = np.square(quantiser).sum(2)[:, None, :] - 2 * parts @ quantiser.transpose(0, 2, 1)
    return distance.argmin(axis=2)


def word_dtype(n_words: int) -> type[np.signedinteger]:
    """The smallest signed integer type that holds word indices below `n_words`: int16 up
    to 32,767 words, else int32 (the network's input is int64, made a batch at a time)."""
    return np.int16 if n_words <= np.iinfo(np.int16).max else np.int32


class Reservoir:
    """A uniform random sample of at most `size` of the rows added, whatever their number
    (Vitter's algorithm R): every row while there are no more than `size`, in order.

    Rows are added in blocks (n, dim); only the sample is kept, a copy.
    """

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        self.seen = 0
        self._blocks: list[np.ndarray] = []

    def add(self, rows: np.ndarray) -> None:
        fill = rows[: max(0, self.size - self.seen)]
        if len(fill) or not self._blocks:
            self._blocks.append(np.array(fill))
        rest = rows[len(fill) :]
        if len(rest):
            sample = self.rows()
            # row t (0-based, over all rows added) takes a slot drawn from 0..t, if < size
            slots = self.rng.integers(0, self.seen + len(fill) + np.arange(len(rest)) + 1)
            taken = np.flatnonzero(slots < self.size)
            # of the rows drawn to the same slot, the last one stays (as added one by one)
            last = len(taken) - 1 - np.unique(slots[taken][::-1], return_index=True)[1]
            sample[slots[taken[last]]] = rest[taken[last]]
        self.seen += len(rows)

    def rows(self) -> np.ndarray:
        """The sample, (min(seen, size), dim)."""
        if len(self._blocks) > 1:
            self._blocks = [np.concatenate(self._blocks)]
        return self._blocks[0]


@dataclass
class Whitening:
    """PCA whitening: z = (x - mean) @ components.T / scale; shapes (d,), (c, d), (c,)."""

    mean: np.ndarray
    components: np.ndarray
    scale: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x: (n, d) -> (n, c) float32."""
        return (((x - self.mean) @ self.components.T) / self.scale).astype(np.float32)


@dataclass
class WordSequences:
    """Songs as audio words, with the codebook they were drawn from.

    words[i]: integer array (n_views, n_types * (1 + n_parts), n_segments_i) (of
    `word_dtype`): rows 0..n_types-1 the word indices of each type, in [0, n_words); then,
    type by type, the segments' `n_parts` texture codes in [0, TEXTURE_CODES) (none if
    `texture` is empty). View 0 is the song as heard; the others are its band-limited
    copies (see `split_views`) and the same sounds cut into words from a fraction of a
    word later (see `AudioWords`);
    centroids[t]: float32 array (n_words, n_components_t), the codebook of type t;
    texture[t]: float32 array (n_parts, TEXTURE_CODES, width), the texture quantiser of
    type t (see `texture_quantiser`), or no entries.
    """

    words: list[np.ndarray]
    types: tuple[str, ...]
    centroids: tuple[np.ndarray, ...]
    texture: tuple[np.ndarray, ...] = ()

    def __len__(self) -> int:
        return len(self.words)


class AudioWords(TransformerMixin, BaseEstimator):
    """Frame features -> audio-word sequences, one codebook per feature type.

    Fitted on the training songs only: segments of `segment_frames` frames, PCA
    whitening to `n_components` dimensions, k-means with `n_words` centroids, on the
    segments of every view of the songs (the song as heard and its band-limited views).
    A view is encoded `phases` times, the p-th sequence of words starting
    p * segment_frames // phases frames in (all cut to the shortest): the same sound
    falls into other words, so the network learns from, and predicts by, each of them.
    At most `max_fit_segments` segments per type enter the fit, a uniform random sample
    drawn as the songs are read one at a time (`Reservoir`): `fit` and `transform` hold
    one song's features at a time, so that `X` may be a `StoredFeatures` of any size.

    With `texture_parts` > 0, each segment is also described by a product quantiser of its
    whitened vector (`texture_quantiser`, fitted on the same sample): `texture_parts` codes
    of a byte per type, from which the network's texture head reads the mean and spread
    of a song's whitened segments, finer than the words give them.
    """

    _parameter_constraints: ClassVar[dict] = {
        "segment_frames": [Interval(Integral, 1, None, closed="left")],
        "phases": [Interval(Integral, 1, None, closed="left")],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "n_words": [Interval(Integral, 1, None, closed="left")],
        "texture_parts": [Interval(Integral, 0, None, closed="left")],
        "max_fit_segments": [Interval(Integral, 1, None, closed="left")],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
    }

    def __init__(
        self,
        segment_frames: int = WordsSettings.segment_frames,
        phases: int = WordsSettings.phases,
        n_components: int = WordsSettings.n_components,
        n_words: int = WordsSettings.n_words,
        texture_parts: int = WordsSettings.texture_parts,
        max_fit_segments: int = WordsSettings.max_fit_segments,
        random_state: int = 0,
    ) -> None:
        self.segment_frames = segment_frames
        self.phases = phases
        self.n_components = n_components
        self.n_words = n_words
        self.texture_parts = texture_parts
        self.max_fit_segments = max_fit_segments
        self.random_state = random_state

    def fit(self, X: Sequence[Features], y: object = None) -> AudioWords:
        self._validate_params()
        WordsSettings.of(self)  # raises ValueError if the settings do not fit together
        if len(X) == 0:
            raise ValueError("AudioWords.fit needs at least one song")
        rng = np.random.default_rng(self.random_state)
        samples: dict[str, Reservoir] = {}
        for song in X:
            for view in split_views(song):
                for name, frames in view.items():
                    sample = samples.setdefault(name, Reservoir(self.max_fit_segments, rng))
                    sample.add(segments(frames, self.segment_frames))
        self.types_ = tuple(samples)
        self.whitening_: dict[str, Whitening] = {}
        self.centroids_: dict[str, np.ndarray] = {}
        self.texture_: dict[str, np.ndarray] = {}
        for name in self.types_:
            data = samples.pop(name).rows()
            n_comp = min(self.n_components, data.shape[1], len(data))
            pca = PCA(n_components=n_comp, whiten=True, random_state=self.random_state).fit(data)
            white = Whitening(
                pca.mean_.astype(np.float32),
                pca.components_.astype(np.float32),
                np.sqrt(pca.explained_variance_ + 1e-8).astype(np.float32),
            )
            n_words = min(self.n_words, len(data))
            kmeans = MiniBatchKMeans(
                n_clusters=n_words, batch_size=4096, n_init=3, random_state=self.random_state
            ).fit(white(data))
            self.whitening_[name] = white
            self.centroids_[name] = kmeans.cluster_centers_.astype(np.float32)
            if self.texture_parts:
                self.texture_[name] = texture_quantiser(
                    white(data), self.texture_parts, self.random_state
                )
        return self

    def encode(self, song: Features) -> np.ndarray:
        """One song's features -> words and texture codes (n_views, n_rows, n_segments),
        `word_dtype` (rows as in `WordSequences`)."""
        check_is_fitted(self, "centroids_")
        return np.concatenate([self._encode_view(view) for view in split_views(song)])

    def _encode_view(self, view: Features) -> np.ndarray:
        """One view's features -> words and texture codes (n_phases, n_rows, n_segments),
        `word_dtype`: every phase that holds a whole segment, cut to the length of the last
        of them."""
        n_frames, size = len(view[self.types_[0]]), self.segment_frames
        starts = [p * size // self.phases for p in range(self.phases)]
        starts = [s for s in starts if n_frames - s >= size]
        n_segments = (n_frames - starts[-1]) // size
        phases = []
        for start in starts:
            words, codes = [], []
            for name in self.types_:
                white = self.whitening_[name](segments(view[name][start:], size)[:n_segments])
                words.append(pairwise_distances_argmin(white, self.centroids_[name]))
                if name in self.texture_:
                    codes += list(texture_codes(white, self.texture_[name]))
            phases.append(np.stack(words + codes))
        return np.stack(phases).astype(word_dtype(self.n_words))

    def transform(self, X: Sequence[Features]) -> WordSequences:
        check_is_fitted(self, "centroids_")
        return WordSequences(
            [self.encode(song) for song in X],
            self.types_,
            tuple(self.centroids_[name] for name in self.types_),
            tuple(self.texture_[name] for name in self.types_ if name in self.texture_),
        )
