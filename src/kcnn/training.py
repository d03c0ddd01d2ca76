"""The KCNN as a scikit-learn estimator: fit on audio words, predict, and represent songs."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from kcnn.config import (
    DEVICES,
    TEXTURE_C,
    TEXTURE_EPOCHS,
    TEXTURE_MAX_CROPS,
    KCNNSettings,
)
from kcnn.errors import KcnnError
from kcnn.network import KCNN, KCNNConfig
from kcnn.words import WordSequences


def resolve_device(name: str) -> torch.device:
    """The torch device that `name` (one of DEVICES) stands for on this machine.

    Raises KcnnError for "cuda" where PyTorch sees no CUDA GPU.
    """
    if name not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {name!r}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        why = (
            f"this PyTorch ({torch.__version__}) is built without CUDA"
            if torch.version.cuda is None
            else "PyTorch sees no CUDA GPU on this machine"
        )
        raise KcnnError(f"device 'cuda': {why}; use device 'cpu' or 'auto'")
    return torch.device("cuda")


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """Float32 convolutions and matrix products in full precision on every device.

    PyTorch lets CUDA convolutions use TF32 (a 10-bit mantissa) by default; in IEEE float32
    a GPU gives the CPU's results within float32 rounding. The settings are put back after.
    """
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        conv.fp32_precision, matmul.fp32_precision = before


def pad_batch(songs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Songs of word indices (n_types, n_i) -> words (batch, n_types, max n_i), lengths.

    Padded positions hold -1 (the lookup tables' padding row).
    """
    lengths = torch.tensor([s.shape[1] for s in songs], dtype=torch.long)
    out = torch.full((len(songs), songs[0].shape[0], int(lengths.max())), -1, dtype=torch.long)
    for i, song in enumerate(songs):
        out[i, :, : song.shape[1]] = torch.from_numpy(song)
    return out, lengths


def excerpts(n_words: int, width: int | None) -> list[slice]:
    """The parts of a song of `n_words` words that prediction reads: the whole song if
    `width` is None or the song no longer, else windows of `width` words overlapping by
    half, the last one ending at the song's end."""
    if width is None or n_words <= width:
        return [slice(0, n_words)]
    starts = [*range(0, n_words - width, max(1, width // 2)), n_words - width]
    return [slice(start, start + width) for start in starts]


def excerpt_batches(
    songs: Sequence[np.ndarray], width: int | None, size: int = 256
) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[int]]]:
    """The excerpts of every view of each song (see `excerpts`), padded in batches of at
    most `size` (see `pad_batch`): words, lengths, and the index of the song of each."""
    parts, owner = [], []
    for i, song in enumerate(songs):
        for view in song:
            for window in excerpts(song.shape[-1], width):
                parts.append(view[:, window])
                owner.append(i)
    for start in range(0, len(parts), size):
        yield *pad_batch(parts[start : start + size]), owner[start : start + size]


def length_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Every index of `lengths` once, in batches of `batch_size` examples of similar length
    (little padding), in random order: the examples are shuffled, sorted by length (equal
    lengths stay shuffled), cut into batches, and the batches shuffled."""
    shuffled = rng.permutation(len(lengths))
    by_length = shuffled[np.argsort(np.asarray(lengths)[shuffled], kind="stable")]
    batches = [by_length[i : i + batch_size] for i in range(0, len(by_length), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def random_crops(
    songs: Sequence[np.ndarray],
    n_crops: int,
    min_words: int,
    max_words: int,
    rng: np.random.Generator,
) -> tuple[list[np.ndarray], np.ndarray]:
    """`n_crops` random excerpts of every song, as training examples.

    songs[i]: (n_views, n_types, n_i) word indices. Each crop is a run of consecutive words,
    of a length drawn uniformly from [min_words, max_words] (the whole song if shorter),
    lying wholly inside one view of its song, drawn at random. Returns the crops
    (n_types, length) and the index of the song of each crop.
    """
    crops, owner = [], []
    for i, song in enumerate(songs):
        n_views, _, n = song.shape
        for _ in range(n_crops):
            length = min(n, int(rng.integers(min_words, max_words + 1)))
            start = int(rng.integers(0, n - length + 1))
            view = int(rng.integers(n_views))
            crops.append(song[view, :, start : start + length])
            owner.append(i)
    return crops, np.asarray(owner)


class KCNNClassifier(ClassifierMixin, TransformerMixin, BaseEstimator):
    """Train the KCNN on audio-word sequences.

    `fit(X, y)` takes a WordSequences (its codebooks initialise the lookup tables, its
    texture quantisers, if any, the texture head's table); `predict` / `predict_proba` use
    the softmax (with texture codes, the mean of the KCNN's and the texture head's);
    `transform` returns the song-level representation (the topmost hidden layer), float32
    (n_songs, hidden_units[-1]).

    With texture codes, the texture head is fitted first, as a multinomial logistic
    regression (L2, C = `kcnn.config.TEXTURE_C`, L-BFGS) on the statistics of random crops
    of the training songs; its input does not change as the network learns, and it stays
    fixed. The KCNN then minimises its cross-entropy + lambda/2 ||theta||^2 by minibatch
    SGD with momentum on random crops of the songs (`crops_per_song` a song and epoch,
    `crop_words` long; batches of crops of similar length, see `length_batches`), the
    lookup tables at `lookup_learning_rate`. A stratified `validation_fraction` of the
    songs is held out: training stops once its loss (of the prediction, the mean of both
    heads' softmaxes) has not improved for `patience` epochs, and the weights of its best
    epoch are kept (`best_epoch_`). `groups` (one per
    song, e.g. several copies of one recording) keep a group on one side of that split.
    Prediction reads every view of a song (as heard, and as band-limited copies would
    sound) in windows of `predict_window` words overlapping by half (None: whole), and
    averages the probabilities and representations of all of them.

    `device` ("auto", "cpu" or "cuda"; see `resolve_device`) is where training and
    prediction run; "auto" takes a CUDA GPU if there is one. The initial weights, crops
    and dropout masks are drawn on the CPU whatever the device, so that a GPU gives the
    CPU's results within float tolerance. It is not saved with a model.
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "window": [Interval(Integral, 1, None, closed="left")],
        "conv_units": [tuple, list],
        "k": [Interval(Integral, 1, None, closed="left")],
        "dynamic_k": ["boolean"],
        "layer_norm": ["boolean"],
        "hidden_units": [tuple, list],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "freeze_embeddings": ["boolean"],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "lookup_learning_rate": [Interval(Real, 0, None, closed="left")],
        "l2": [Interval(Real, 0, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "crops_per_song": [Interval(Integral, 1, None, closed="left")],
        "crop_words": [tuple, list],
        "predict_window": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "progress": ["boolean"],
        "device": [StrOptions(set(DEVICES))],
    }

    def __init__(
        self,
        window: int = KCNNSettings.window,
        conv_units: tuple[int, ...] = KCNNSettings.conv_units,
        k: int = KCNNSettings.k,
        dynamic_k: bool = KCNNSettings.dynamic_k,
        layer_norm: bool = KCNNSettings.layer_norm,
        hidden_units: tuple[int, ...] = KCNNSettings.hidden_units,
        dropout: float = KCNNSettings.dropout,
        freeze_embeddings: bool = KCNNSettings.freeze_embeddings,
        learning_rate: float = KCNNSettings.learning_rate,
        lookup_learning_rate: float = KCNNSettings.lookup_learning_rate,
        l2: float = KCNNSettings.l2,
        momentum: float = KCNNSettings.momentum,
        epochs: int = KCNNSettings.epochs,
        patience: int | None = KCNNSettings.patience,
        validation_fraction: float = KCNNSettings.validation_fraction,
        crops_per_song: int = KCNNSettings.crops_per_song,
        crop_words: tuple[int, int] = KCNNSettings.crop_words,
        predict_window: int | None = KCNNSettings.predict_window,
        batch_size: int = KCNNSettings.batch_size,
        random_state: int = 0,
        progress: bool = False,
        device: str = "auto",
    ) -> None:
        self.window = window
        self.conv_units = conv_units
        self.k = k
        self.dynamic_k = dynamic_k
        self.layer_norm = layer_norm
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.freeze_embeddings = freeze_embeddings
        self.learning_rate = learning_rate
        self.lookup_learning_rate = lookup_learning_rate
        self.l2 = l2
        self.momentum = momentum
        self.epochs = epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.crops_per_song = crops_per_song
        self.crop_words = crop_words
        self.predict_window = predict_window
        self.batch_size = batch_size
        self.random_state = random_state
        self.progress = progress
        self.device = device

    def _config(self, X: WordSequences) -> KCNNConfig:
        return KCNNConfig(
            n_words=tuple(len(c) for c in X.centroids),
            embed_dims=tuple(c.shape[1] for c in X.centroids),
            n_classes=len(self.classes_),
            window=self.window,
            conv_units=tuple(self.conv_units),
            k=self.k,
            dynamic_k=self.dynamic_k,
            layer_norm=self.layer_norm,
            hidden_units=tuple(self.hidden_units),
            dropout=self.dropout,
            freeze_embeddings=self.freeze_embeddings,
            texture_parts=X.texture[0].shape[0] if X.texture else 0,
            texture_width=X.texture[0].shape[2] if X.texture else 0,
        )

    def _split(self, targets: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the songs to fit on and of the validation songs (maybe none)."""
        everything = np.arange(len(targets))
        unique_groups, first = np.unique(groups, return_index=True)
        group_targets = targets[first]
        counts = np.bincount(group_targets)
        n_val = round(self.validation_fraction * len(unique_groups))
        if self.patience is None or n_val < len(counts) or counts.min() < 2:
            return everything, everything[:0]
        split = StratifiedShuffleSplit(1, test_size=n_val, random_state=self.random_state)
        _, val_groups = next(split.split(unique_groups, group_targets))
        is_val = np.isin(groups, unique_groups[val_groups])
        return everything[~is_val], everything[is_val]

    def fit(
        self,
        X: WordSequences,
        y: Sequence,
        groups: Sequence | None = None,
        after_epoch: Callable[[int, int], bool] | None = None,
    ) -> KCNNClassifier:
        """Train on X, y (see the class docstring). after_epoch(epoch, best_epoch), if given,
        is called after each epoch that early stopping lets through (0-based, the best so
        far); training ends when it returns False."""
        self._validate_params()
        device = resolve_device(self.device)
        self.classes_, targets = np.unique(np.asarray(y), return_inverse=True)
        groups = np.arange(len(X)) if groups is None else np.asarray(groups)
        rng = np.random.default_rng(self.random_state)
        torch.manual_seed(self.random_state)
        network = KCNN(self._config(X))
        network.init_lookups(tuple(torch.from_numpy(c) for c in X.centroids))
        self.network_ = network.to(device)
        lookups = [p for p in self.network_.lookups.parameters() if p.requires_grad]
        others = [
            p
            for n, p in self.network_.named_parameters()
            if p.requires_grad and not n.startswith("lookups.")
        ]
        param_groups = [{"params": others}, {"params": lookups, "lr": self.lookup_learning_rate}]
        optimiser = torch.optim.SGD(
            [g for g in param_groups if g["params"]],
            lr=self.learning_rate,
            momentum=self.momentum,
            weight_decay=self.l2,
        )
        fit_idx, val_idx = self._split(targets, groups)
        self.validation_songs_ = val_idx
        if X.texture:
            self._fit_texture(X, targets, fit_idx, rng, device)
        target = torch.from_numpy(targets.astype(np.int64))
        self.loss_curve_: list[float] = []
        self.validation_curve_: list[float] = []
        best, best_state, self.best_epoch_ = np.inf, None, 0
        epochs = tqdm(range(self.epochs), desc="training", unit="epoch", disable=not self.progress)
        for epoch in epochs:
            with full_precision():
                loss = self._epoch(X, target, fit_idx, optimiser, rng, device)
            self.loss_curve_.append(loss)
            if len(val_idx):
                val = self._loss(X, target, val_idx)
                self.validation_curve_.append(val)
                if val < best:
                    best, self.best_epoch_ = val, epoch
                    best_state = copy.deepcopy(self.network_.state_dict())
                elif epoch - self.best_epoch_ >= self.patience:
                    break
            else:
                self.best_epoch_ = epoch
            epochs.set_postfix(loss=f"{self.loss_curve_[-1]:.3f}", best=self.best_epoch_ + 1)
            if after_epoch is not None and not after_epoch(epoch, self.best_epoch_):
                break
        if best_state is not None:
            self.network_.load_state_dict(best_state)
        self.network_.eval()
        return self

    def _fit_texture(
        self,
        X: WordSequences,
        targets: np.ndarray,
        songs: np.ndarray,
        rng: np.random.Generator,
        device: torch.device,
    ) -> None:
        """Set the texture head's table from X's quantisers, and fit the head to the
        statistics of random crops of `songs` (see `random_crops`; TEXTURE_EPOCHS epochs'
        worth, at most TEXTURE_MAX_CROPS), standardised by their mean and spread."""
        net = self.network_
        net.init_texture(tuple(torch.from_numpy(q) for q in X.texture))
        per_song = min(TEXTURE_EPOCHS * self.crops_per_song, TEXTURE_MAX_CROPS // len(songs))
        lo, hi = self.crop_words
        crops, owner = random_crops([X.words[i] for i in songs], max(1, per_song), lo, hi, rng)
        stats = np.empty((len(crops), len(net.texture_mean)), dtype=np.float32)
        with torch.no_grad(), full_precision():  # each crop a song of one view, read whole
            for words, lengths, which in excerpt_batches([c[None] for c in crops], None):
                stats[which] = net.texture_stats(words.to(device), lengths.to(device)).cpu()
        mean, std = stats.mean(0), stats.std(0)
        net.standardise_texture(torch.from_numpy(mean), torch.from_numpy(std))
        inputs = (stats - mean) / net.texture_scale.cpu().numpy()  # std, bar its floor
        fit = LogisticRegression(C=TEXTURE_C, max_iter=1000)
        fit.fit(inputs, targets[songs[owner]])  # every class is in `songs`
        weight, bias = fit.coef_, fit.intercept_
        if len(self.classes_) == 2:  # one logit z: the softmax of (-z / 2, z / 2) is sigmoid(z)
            weight, bias = np.concatenate([-weight, weight]) / 2, np.r_[-bias, bias] / 2
        net.init_texture_head(torch.from_numpy(weight).float(), torch.from_numpy(bias).float())

    def _epoch(
        self,
        X: WordSequences,
        target: torch.Tensor,
        songs: np.ndarray,
        optimiser: torch.optim.Optimizer,
        rng: np.random.Generator,
        device: torch.device,
    ) -> float:
        """One pass over random crops of `songs` on `device`; returns the mean training loss."""
        self.network_.train()
        chosen = [X.words[i] for i in songs]
        lo, hi = self.crop_words
        examples, owner = random_crops(chosen, self.crops_per_song, lo, hi, rng)
        total = 0.0
        for idx in length_batches([e.shape[1] for e in examples], self.batch_size, rng):
            words, lengths = pad_batch([examples[i] for i in idx])
            labels = target[songs[owner[idx]]].to(device)
            words, lengths = words.to(device), lengths.to(device)
            scores = self.network_.output(self.network_.represent(words, lengths))
            loss = torch.nn.functional.cross_entropy(scores, labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
        self.network_.eval()
        return total / len(examples)

    def _loss(self, X: WordSequences, target: torch.Tensor, songs: np.ndarray) -> float:
        """Mean cross-entropy of whole `songs`."""
        proba = torch.from_numpy(self._batches([X.words[i] for i in songs], head=True))
        return float(torch.nn.functional.nll_loss(proba.clamp(min=1e-12).log(), target[songs]))

    def _batches(self, songs: Sequence[np.ndarray], head: bool) -> np.ndarray:
        """Mean over the excerpts of every view of each song (see `excerpts`) of the
        softmax (head) or of the representation, (n_songs, n_classes or units), computed
        on `device` (the network is moved there)."""
        check_is_fitted(self, "network_")
        device = resolve_device(self.device)
        net = self.network_.to(device)
        width = self.network_.config.n_classes if head else self.network_.config.hidden_units[-1]
        total = np.zeros((len(songs), width), dtype=np.float64)
        count = np.zeros(len(songs))
        with torch.no_grad(), full_precision():
            for words, lengths, owner in excerpt_batches(songs, self.predict_window):
                words, lengths = words.to(device), lengths.to(device)
                scores = net(words, lengths).softmax(1) if head else net.represent(words, lengths)
                np.add.at(total, owner, scores.cpu().numpy())
                np.add.at(count, owner, 1)
        return (total / count[:, None]).astype(np.float32)

    def decision_function(self, X: WordSequences) -> np.ndarray:
        """Log-probabilities (n_songs, n_classes), columns in `classes_` order."""
        return np.log(np.maximum(self.predict_proba(X), 1e-12))

    def predict_proba(self, X: WordSequences) -> np.ndarray:
        """Softmax probabilities averaged over views (n_songs, n_classes), `classes_` order."""
        return self._batches(X.words, head=True)

    def predict(self, X: WordSequences) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def transform(self, X: WordSequences) -> np.ndarray:
        """Song-level representations, float32 (n_songs, hidden_units[-1])."""
        return self._batches(X.words, head=False)
