"""The compared methods (paper Table 2, and an MFCC baseline), fitted on one fold's training songs.

All methods but the baseline see the same frame features, the same segments and the same
PCA whitening: one `AudioWords` fitted per fold and feature set serves the four KCNN
variants (its codebook initialises their lookup tables) and the three competitors (its
whitening is their input). Every learned stage is fitted on the fold's training songs only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from kcnn.baseline import MFCCStatistics
from kcnn.benchmark.representations import (
    DeepBeliefNetwork,
    DenoisingAutoencoder,
    PooledCode,
    SparseCoding,
    whitened_segments,
)
from kcnn.extraction import Features
from kcnn.svm import SVMClassifier
from kcnn.training import KCNNClassifier
from kcnn.words import AudioWords, WordSequences

METHODS: dict[str, str] = {
    "sc-svm": "Sparse coding + SVM",
    "ae-svm": "Autoencoder + SVM",
    "dbn-svm": "DBN + SVM",
    "kcnn-ult": "KCNN (k = 5) ULT",
    "kcnn": "KCNN (k = 5)",
    "kcnn-k1-svm": "KCNN (k = 1) + SVM",
    "kcnn-svm": "KCNN (k = 5) + SVM",
    "mfcc-svm": "MFCC statistics + SVM",
}
"""Method key -> its name in the tables, in the order of the paper's Table 2."""
BASELINE = "mfcc-svm"
"""The baseline a practitioner tries first; it uses its own features, not a feature set."""
BASELINE_FEATURES = "mfcc"
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "mel": ("mel",),
    "sfm": ("sfm",),
    "scf": ("scf",),
    "spec": ("spec",),
    "all": ("mel", "sfm", "scf"),
    BASELINE_FEATURES: ("mfcc",),
}
"""Feature set -> frame feature types; "all" is the paper's ALL column."""


@dataclass(frozen=True)
class Group:
    """One fitted model that serves one or more methods (e.g. a KCNN's softmax and SVM)."""

    name: str
    methods: tuple[str, ...]


GROUPS = (
    Group("sc", ("sc-svm",)),
    Group("ae", ("ae-svm",)),
    Group("dbn", ("dbn-svm",)),
    Group("kcnn-ult", ("kcnn-ult",)),
    Group("kcnn", ("kcnn", "kcnn-svm")),
    Group("kcnn-k1", ("kcnn-k1-svm",)),
    Group("mfcc", (BASELINE,)),
)


def groups_for(methods: Sequence[str], features: str) -> list[Group]:
    """The groups that make `methods` on feature set `features` (the baseline only on mfcc)."""
    baseline = features == BASELINE_FEATURES
    return [
        g for g in GROUPS if (g.name == "mfcc") == baseline and any(m in methods for m in g.methods)
    ]


@dataclass(frozen=True)
class LearnerSettings:
    """Settings of the learned stages (defaults: paper Table 1 and section 4.2 for the KCNN).

    segment_frames, components, words: audio words (frames per segment, whitened
    dimensions per type, codebook size); epochs, conv_units, hidden_units: the KCNN;
    code_units: size of the competitors' codes (dictionary atoms, autoencoder and RBM
    units); coder_epochs: passes of the autoencoder and each RBM over their training
    segments; max_fit_segments: segments (drawn at random) the competitors learn from;
    svm_c: C of the RBF SVMs.
    """

    segment_frames: int = 4
    components: int = 48
    words: int = 256
    epochs: int = 60
    conv_units: tuple[int, ...] = (500,)
    hidden_units: tuple[int, ...] = (300,)
    code_units: int = 256
    coder_epochs: int = 20
    max_fit_segments: int = 10_000
    svm_c: float = 10.0


@dataclass
class Outcome:
    """What one group produced on a fold's test songs.

    predictions: method -> predicted label of each test song; representations: method ->
    float32 (n_test, dim) song-level representations; loss_curve: mean training loss per
    epoch (KCNN only); seconds: wall time of the fit and prediction.
    """

    group: str
    predictions: dict[str, list[str]] = field(default_factory=dict)
    representations: dict[str, np.ndarray] = field(default_factory=dict)
    loss_curve: list[float] | None = None
    seconds: float = 0.0


class FoldLearner:
    """Fits the methods of one fold and feature set on its training songs only.

    train, test: frame features of the fold's training and test songs, holding exactly the
    feature set's types; labels: the training songs' labels. Test songs are only ever
    transformed and predicted. The audio words are fitted once, on first use. device: where
    the KCNN runs (see `KCNNClassifier`).
    """

    def __init__(
        self,
        train: list[Features],
        labels: Sequence[str],
        test: list[Features],
        settings: LearnerSettings,
        seed: int,
        device: str = "auto",
    ) -> None:
        self.train = train
        self.labels = np.asarray(labels)
        self.test = test
        self.settings = settings
        self.seed = seed
        self.device = device

    @cached_property
    def words(self) -> AudioWords:
        """Whitening and codebooks, fitted on the training songs."""
        s = self.settings
        return AudioWords(
            segment_frames=s.segment_frames,
            n_components=s.components,
            n_words=s.words,
            random_state=self.seed,
        ).fit(self.train)

    @cached_property
    def sequences(self) -> tuple[WordSequences, WordSequences]:
        """Audio words of the training and of the test songs."""
        return self.words.transform(self.train), self.words.transform(self.test)

    @cached_property
    def segments(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Whitened segments of the training and of the test songs."""
        return (
            [whitened_segments(self.words, song) for song in self.train],
            [whitened_segments(self.words, song) for song in self.test],
        )

    def prepare(self) -> float:
        """Fit the audio words and encode every song now; returns the wall seconds it took."""
        start = time.perf_counter()
        _ = self.sequences, self.segments
        return time.perf_counter() - start

    def run(self, group: Group, methods: Sequence[str]) -> Outcome:
        """Fit `group` and predict the test songs for those of its methods in `methods`."""
        wanted = [m for m in group.methods if m in methods]
        start = time.perf_counter()
        if group.name == "mfcc":
            stats = MFCCStatistics()
            train, test = stats.transform(self.train), stats.transform(self.test)
            outcome = self._svm_outcome(group, train, test)
        elif group.name.startswith("kcnn"):
            outcome = self._kcnn(group, wanted)
        else:
            outcome = self._competitor(group)
        outcome.seconds = time.perf_counter() - start
        return outcome

    def _svm(self, train: np.ndarray, test: np.ndarray) -> list[str]:
        """Labels of the test songs by an SVM fitted on the training songs' representations."""
        svm = SVMClassifier(C=self.settings.svm_c, random_state=self.seed).fit(train, self.labels)
        return [str(p) for p in svm.predict(test)]

    def _svm_outcome(self, group: Group, train: np.ndarray, test: np.ndarray) -> Outcome:
        method = group.methods[0]
        return Outcome(group.name, {method: self._svm(train, test)}, {method: test})

    def _competitor(self, group: Group) -> Outcome:
        s = self.settings
        common = {
            "n_units": s.code_units,
            "max_fit_segments": s.max_fit_segments,
            "random_state": self.seed,
        }
        coder: PooledCode
        if group.name == "sc":
            coder = SparseCoding(**common)
        elif group.name == "ae":
            coder = DenoisingAutoencoder(epochs=s.coder_epochs, **common)
        else:
            coder = DeepBeliefNetwork(epochs=s.coder_epochs, **common)
        train, test = self.segments
        coder.fit(train)
        return self._svm_outcome(group, coder.transform(train), coder.transform(test))

    def _kcnn(self, group: Group, wanted: list[str]) -> Outcome:
        s = self.settings
        network = KCNNClassifier(
            k=1 if group.name == "kcnn-k1" else 5,
            freeze_embeddings=group.name == "kcnn-ult",
            epochs=s.epochs,
            conv_units=s.conv_units,
            hidden_units=s.hidden_units,
            random_state=self.seed,
            device=self.device,
        )
        train, test = self.sequences
        network.fit(train, self.labels)
        reps = network.transform(test)
        outcome = Outcome(group.name, loss_curve=list(network.loss_curve_))
        for method in wanted:
            if method.endswith("-svm"):
                outcome.predictions[method] = self._svm(network.transform(train), reps)
            else:
                outcome.predictions[method] = [str(p) for p in network.predict(test)]
            outcome.representations[method] = reps
        return outcome
