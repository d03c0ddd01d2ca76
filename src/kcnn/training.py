"""The KCNN as a scikit-learn estimator: fit on audio words, predict, and represent songs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from kcnn.network import KCNN, KCNNConfig
from kcnn.words import WordSequences


def pad_batch(songs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Songs of word indices (n_types, n_i) -> words (batch, n_types, max n_i), lengths.

    Padded positions hold -1 (the lookup tables' padding row).
    """
    lengths = torch.tensor([s.shape[1] for s in songs], dtype=torch.long)
    out = torch.full((len(songs), songs[0].shape[0], int(lengths.max())), -1, dtype=torch.long)
    for i, song in enumerate(songs):
        out[i, :, : song.shape[1]] = torch.from_numpy(song)
    return out, lengths


class KCNNClassifier(ClassifierMixin, TransformerMixin, BaseEstimator):
    """Train the KCNN on audio-word sequences.

    `fit(X, y)` takes a WordSequences (its codebooks initialise the lookup tables);
    `predict` / `predict_proba` use the softmax; `transform` returns the song-level
    representation (the topmost hidden layer), float32 (n_songs, hidden_units[-1]).
    Training minimises cross-entropy + lambda/2 ||theta||^2 by minibatch SGD.
    """

    def __init__(
        self,
        window: int = 5,
        conv_units: tuple[int, ...] = (500,),
        k: int = 5,
        hidden_units: tuple[int, ...] = (300,),
        freeze_embeddings: bool = False,
        learning_rate: float = 0.02,
        l2: float = 1e-4,
        momentum: float = 0.9,
        epochs: int = 60,
        batch_size: int = 8,
        random_state: int = 0,
        progress: bool = False,
    ) -> None:
        self.window = window
        self.conv_units = conv_units
        self.k = k
        self.hidden_units = hidden_units
        self.freeze_embeddings = freeze_embeddings
        self.learning_rate = learning_rate
        self.l2 = l2
        self.momentum = momentum
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.progress = progress

    def fit(self, X: WordSequences, y: Sequence) -> KCNNClassifier:
        self.classes_, targets = np.unique(np.asarray(y), return_inverse=True)
        torch.manual_seed(self.random_state)
        config = KCNNConfig(
            n_words=tuple(len(c) for c in X.centroids),
            embed_dims=tuple(c.shape[1] for c in X.centroids),
            n_classes=len(self.classes_),
            window=self.window,
            conv_units=tuple(self.conv_units),
            k=self.k,
            hidden_units=tuple(self.hidden_units),
            freeze_embeddings=self.freeze_embeddings,
        )
        self.network_ = KCNN(config)
        self.network_.init_lookups(tuple(torch.from_numpy(c) for c in X.centroids))
        params = [p for p in self.network_.parameters() if p.requires_grad]
        optimiser = torch.optim.SGD(
            params, lr=self.learning_rate, momentum=self.momentum, weight_decay=self.l2
        )
        target = torch.from_numpy(targets.astype(np.int64))
        generator = torch.Generator().manual_seed(self.random_state)
        self.loss_curve_: list[float] = []
        self.network_.train()
        epochs = tqdm(range(self.epochs), desc="training", unit="epoch", disable=not self.progress)
        for _ in epochs:
            order = torch.randperm(len(X), generator=generator)
            total = 0.0
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                words, lengths = pad_batch([X.words[i] for i in idx])
                loss = torch.nn.functional.cross_entropy(self.network_(words, lengths), target[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item() * len(idx)
            self.loss_curve_.append(total / len(X))
            epochs.set_postfix(loss=f"{self.loss_curve_[-1]:.3f}")
        self.network_.eval()
        return self

    def _batches(self, X: WordSequences, head: bool) -> np.ndarray:
        check_is_fitted(self, "network_")
        out = []
        with torch.no_grad():
            for start in range(0, len(X), 64):
                words, lengths = pad_batch(X.words[start : start + 64])
                net = self.network_
                out.append((net(words, lengths) if head else net.represent(words, lengths)).numpy())
        return np.concatenate(out)

    def decision_function(self, X: WordSequences) -> np.ndarray:
        """Class scores before the softmax, (n_songs, n_classes)."""
        return self._batches(X, head=True)

    def predict_proba(self, X: WordSequences) -> np.ndarray:
        """Softmax probabilities (n_songs, n_classes), columns in `classes_` order."""
        return torch.softmax(torch.from_numpy(self.decision_function(X)), dim=1).numpy()

    def predict(self, X: WordSequences) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]

    def transform(self, X: WordSequences) -> np.ndarray:
        """Song-level representations, float32 (n_songs, hidden_units[-1])."""
        return self._batches(X, head=False)
