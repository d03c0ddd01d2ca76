"""The competitors' feature learners (paper 4.3): sparse coding, a denoising autoencoder, a DBN.

Each learns a code of segments (the same PCA-whitened segments the audio words are made
from) on the training songs, and represents a song by the max-pooling of its segments'
codes over the whole song. Input to `fit` and `transform`: one float32 array per song,
(n_segments_i, dim), as made by `WhitenedSegments`; `transform` returns (n_songs, n_units).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.decomposition import MiniBatchDictionaryLearning
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_is_fitted
from torch import nn

from kcnn.benchmark.choices import CodeSettings
from kcnn.config import WordsSettings
from kcnn.extraction import Features
from kcnn.words import AudioWords, segments


class WhitenedSegments(TransformerMixin, BaseEstimator):
    """Frame features -> each song's segments, each type whitened by `words` (fitted by `fit`,
    unless frozen), side by side: float32 (n_segments_i, sum of the whitened dimensions)."""

    def __init__(self, words: AudioWords | FrozenEstimator) -> None:
        self.words = words

    def fit(self, X: Sequence[Features], y: object = None) -> WhitenedSegments:
        self.words_ = clone(self.words).fit(X, y)
        return self

    def transform(self, X: Sequence[Features]) -> list[np.ndarray]:
        check_is_fitted(self, "words_")
        words = self.words_
        return [
            np.hstack(
                [words.whitening_[t](segments(song[t], words.segment_frames)) for t in words.types_]
            )
            for song in X
        ]


def sample_segments(songs: Sequence[np.ndarray], limit: int, seed: int) -> np.ndarray:
    """At most `limit` segments drawn at random (without replacement) from all songs."""
    data = np.concatenate(songs)
    if len(data) > limit:
        data = data[np.random.default_rng(seed).choice(len(data), limit, replace=False)]
    return data


class PooledCode(TransformerMixin, BaseEstimator):
    """Base class: learn a segment code on training songs; a song = max over its segments.

    Subclasses implement `_learn(data)` (data: (n, dim) float32) and `_encode(data)`
    -> (n, n_units).
    """

    n_units: int
    max_fit_segments: int
    random_state: int

    def fit(self, X: Sequence[np.ndarray], y: object = None) -> PooledCode:
        self._learn(sample_segments(X, self.max_fit_segments, self.random_state))
        self.fitted_ = True
        return self

    def transform(self, X: Sequence[np.ndarray]) -> np.ndarray:
        """Max-pooled codes, float32 (n_songs, n_units of the code)."""
        check_is_fitted(self, "fitted_")
        starts = np.cumsum([0] + [len(s) for s in X[:-1]])
        codes = self._encode(np.concatenate(X))
        return np.maximum.reduceat(codes, starts, axis=0).astype(np.float32)

    def _learn(self, data: np.ndarray) -> None:
        raise NotImplementedError

    def _encode(self, data: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class SparseCoding(PooledCode):
    """A dictionary of `n_units` atoms learned with the L1-penalised formulation (Mairal et al.
    2009, online; scikit-learn), and the L1 (lasso) encoding of each segment with penalty
    `alpha`. Codes are split by sign into 2 * n_units non-negative values (Coates and Ng
    2011), so that max-pooling keeps both strong positive and strong negative activations.
    Coordinate descent stops after `max_iter` passes over the atoms per segment: at
    scikit-learn's 1,000, the few segments that never reach its tolerance took two thirds of
    the time, for codes that differ by 3e-5 (relative, summed over a fold's segments).
    """

    def __init__(
        self,
        n_units: int = CodeSettings.units,
        alpha: float = 1.0,
        epochs: int = 3,
        max_iter: int = CodeSettings.sparse_passes,
        max_fit_segments: int = WordsSettings.max_fit_segments,
        random_state: int = 0,
    ) -> None:
        self.n_units = n_units
        self.alpha = alpha
        self.epochs = epochs
        self.max_iter = max_iter
        self.max_fit_segments = max_fit_segments
        self.random_state = random_state

    def _learn(self, data: np.ndarray) -> None:
        self.dictionary_ = MiniBatchDictionaryLearning(
            n_components=self.n_units,
            alpha=self.alpha,
            max_iter=self.epochs,
            batch_size=512,
            fit_algorithm="cd",
            transform_algorithm="lasso_cd",
            transform_alpha=self.alpha,
            transform_max_iter=self.max_iter,
            split_sign=True,
            random_state=self.random_state,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.dictionary_.fit(data)

    def _encode(self, data: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return self.dictionary_.transform(data)


class DenoisingAutoencoder(PooledCode):
    """One sigmoid hidden layer of `n_units`, trained (Adam) to reconstruct a segment from a
    copy with a fraction `noise` of its values set to zero (Vincent et al. 2010); the loss is
    the mean squared error plus `sparsity` times the mean hidden activation (without it the
    hidden units saturate and their max over a song is ~1 everywhere). The code of a segment
    is its hidden layer.
    """

    def __init__(
        self,
        n_units: int = CodeSettings.units,
        noise: float = 0.3,
        sparsity: float = 1.0,
        epochs: int = CodeSettings.epochs,
        learning_rate: float = 1e-3,
        max_fit_segments: int = WordsSettings.max_fit_segments,
        random_state: int = 0,
    ) -> None:
        self.n_units = n_units
        self.noise = noise
        self.sparsity = sparsity
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.max_fit_segments = max_fit_segments
        self.random_state = random_state

    def _learn(self, data: np.ndarray) -> None:
        gen = torch.Generator().manual_seed(self.random_state)
        torch.manual_seed(self.random_state)
        self.encoder_ = nn.Sequential(nn.Linear(data.shape[1], self.n_units), nn.Sigmoid())
        decoder = nn.Linear(self.n_units, data.shape[1])
        params = [*self.encoder_.parameters(), *decoder.parameters()]
        optimiser = torch.optim.Adam(params, lr=self.learning_rate)
        x = torch.from_numpy(data)
        for _ in range(self.epochs):
            for batch in torch.randperm(len(x), generator=gen).split(128):
                clean = x[batch]
                kept = torch.rand(clean.shape, generator=gen) >= self.noise
                hidden = self.encoder_(clean * kept)
                loss = ((decoder(hidden) - clean) ** 2).mean() + self.sparsity * hidden.mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()

    def _encode(self, data: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.encoder_(torch.from_numpy(data)).numpy()


def train_rbm(
    data: torch.Tensor,
    n_hidden: int,
    gaussian: bool,
    epochs: int,
    learning_rate: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A restricted Boltzmann machine trained by CD-1 with momentum and weight decay.

    data: (n, n_visible); Gaussian visible units of unit variance if `gaussian` (for
    whitened input), else Bernoulli. Returns the weights (n_visible, n_hidden) and the
    hidden biases (n_hidden,): p(h = 1 | v) = sigmoid(v @ W + c).
    """
    n_visible = data.shape[1]
    w = torch.randn(n_visible, n_hidden, generator=gen) * 0.01
    b = data.mean(0) if gaussian else torch.zeros(n_visible)
    c = torch.zeros(n_hidden)
    velocity = [torch.zeros_like(w), torch.zeros_like(b), torch.zeros_like(c)]
    for epoch in range(epochs):
        momentum = 0.5 if epoch < 5 else 0.9
        for batch in torch.randperm(len(data), generator=gen).split(64):
            v0 = data[batch]
            h0 = torch.sigmoid(v0 @ w + c)
            mean_v1 = torch.bernoulli(h0, generator=gen) @ w.T + b
            v1 = mean_v1 if gaussian else torch.sigmoid(mean_v1)
            h1 = torch.sigmoid(v1 @ w + c)
            grads = (
                (v0.T @ h0 - v1.T @ h1) / len(v0) - 2e-4 * w,
                (v0 - v1).mean(0),
                (h0 - h1).mean(0),
            )
            for param, vel, grad in zip((w, b, c), velocity, grads, strict=True):
                vel.mul_(momentum).add_(grad, alpha=learning_rate)
                param.add_(vel)
    return w, c


class DeepBeliefNetwork(PooledCode):
    """Stacked RBMs trained greedily (Hinton et al. 2006), as Hamel and Eck (2010) did for
    genre: a Gaussian-Bernoulli RBM on the whitened segments, then Bernoulli-Bernoulli RBMs,
    each of `n_units`. The code of a segment is the top layer's hidden probabilities.
    """

    def __init__(
        self,
        n_units: int = CodeSettings.units,
        n_layers: int = 2,
        epochs: int = CodeSettings.epochs,
        learning_rate: float = 0.01,
        max_fit_segments: int = WordsSettings.max_fit_segments,
        random_state: int = 0,
    ) -> None:
        self.n_units = n_units
        self.n_layers = n_layers
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.max_fit_segments = max_fit_segments
        self.random_state = random_state

    def _learn(self, data: np.ndarray) -> None:
        gen = torch.Generator().manual_seed(self.random_state)
        h = torch.from_numpy(data)
        self.layers_: list[tuple[torch.Tensor, torch.Tensor]] = []
        for i in range(self.n_layers):
            rate = self.learning_rate if i == 0 else 10 * self.learning_rate
            w, c = train_rbm(h, self.n_units, i == 0, self.epochs, rate, gen)
            self.layers_.append((w, c))
            h = torch.sigmoid(h @ w + c)

    def _encode(self, data: np.ndarray) -> np.ndarray:
        h = torch.from_numpy(data)
        for w, c in self.layers_:
            h = torch.sigmoid(h @ w + c)
        return h.numpy()
