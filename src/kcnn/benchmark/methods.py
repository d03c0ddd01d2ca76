"""The compared methods (paper Table 2, and an MFCC baseline), fitted on one fold's training songs.

Every method is a scikit-learn Pipeline built from one `ModelConfig` (`make_method`): the
KCNN variants are the kcnn model's stages, the competitors share its audio words and SVM.
All methods but the baseline see the same frame features, the same segments and the same
PCA whitening: one `AudioWords` fitted per fold and feature set serves the four KCNN
variants (its codebook initialises their lookup tables) and the three competitors (its
whitening is their input). Every learned stage is fitted on the fold's training songs only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from kcnn.baseline import MFCCStatistics
from kcnn.benchmark.choices import BASELINE, BASELINE_FEATURES, CodeSettings
from kcnn.benchmark.representations import (
    DeepBeliefNetwork,
    DenoisingAutoencoder,
    PooledCode,
    SparseCoding,
    WhitenedSegments,
)
from kcnn.config import ModelConfig
from kcnn.extraction import Features
from kcnn.model import make_pipeline
from kcnn.words import AudioWords


@dataclass(frozen=True)
class Group:
    """One fitted model that serves one or more methods (e.g. a KCNN's softmax and SVM):
    the longest method's pipeline, whose first steps are the others' (see `make_method`)."""

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
class MethodSettings:
    """What every method is built from: the kcnn model's config (its audio words serve the
    competitors too; its feature types are those of each feature set), the competitors'
    codes, and where the KCNN runs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    codes: CodeSettings = field(default_factory=CodeSettings)
    device: str = "auto"


CODERS: dict[str, Callable[[CodeSettings], PooledCode]] = {
    "sc-svm": lambda codes: SparseCoding(n_units=codes.units, max_iter=codes.sparse_passes),
    "ae-svm": lambda codes: DenoisingAutoencoder(n_units=codes.units, epochs=codes.epochs),
    "dbn-svm": lambda codes: DeepBeliefNetwork(n_units=codes.units, epochs=codes.epochs),
}
"""Competitor method -> its code of whitened segments."""
NETWORKS: dict[str, dict[str, Any]] = {
    "kcnn-ult": {"freeze_embeddings": True},
    "kcnn": {},
    "kcnn-k1-svm": {"k": 1},
    "kcnn-svm": {},
}
"""KCNN method -> how its network differs from the model's."""


def make_method(
    key: str, settings: MethodSettings, seed: int, words: AudioWords | None = None
) -> Pipeline:
    """Method `key` as a Pipeline: frame features in, labels out (see `score`).

    Its stages are those of the kcnn model of `settings.model` (`make_pipeline`), seeded
    with `seed`. words: audio words already fitted and shared, kept as they are (default:
    fitted with the method). Methods of one `Group` are each the first steps of the longest.
    """
    model = make_pipeline(settings.model, seed, device=settings.device).named_steps
    svm = ("svm", model["svm"])
    if key == BASELINE:
        return Pipeline([("statistics", MFCCStatistics()), svm])
    shared = model["words"] if words is None else FrozenEstimator(words)
    if key in CODERS:
        coder = CODERS[key](settings.codes).set_params(
            max_fit_segments=settings.model.words.max_fit_segments, random_state=seed
        )
        return Pipeline([("segments", WhitenedSegments(shared)), ("code", coder), svm])
    network = ("kcnn", model["kcnn"].set_params(**NETWORKS[key]))
    return Pipeline([("words", shared), network, *([svm] if key.endswith("-svm") else [])])


def score(method: Pipeline, songs: Sequence[Features]) -> tuple[list[str], np.ndarray]:
    """The labels a fitted method predicts for `songs`, and their representations: what its
    SVM reads, or the KCNN's topmost hidden layer."""
    inputs = method[:-1].transform(list(songs))
    classifier = method[-1]
    represent = getattr(classifier, "transform", None)
    reps = inputs if represent is None else represent(inputs)
    return [str(p) for p in classifier.predict(inputs)], reps


@dataclass
class Outcome:
    """What one group produced on a fold's test songs.

    predictions: method -> predicted label of each test song; representations: method ->
    float32 (n_test, dim) song-level representations; loss_curve: mean training loss per
    epoch (KCNN only); seconds: wall time of the fit and prediction; words_seconds: wall
    time of fitting the audio words its fold shares, if they were fitted for it.
    """

    group: str
    predictions: dict[str, list[str]] = field(default_factory=dict)
    representations: dict[str, np.ndarray] = field(default_factory=dict)
    loss_curve: list[float] | None = None
    seconds: float = 0.0
    words_seconds: float | None = None


class FoldMethods:
    """The methods of one fold and feature set, fitted on its training songs only.

    train, test: frame features of the fold's training and test songs, holding exactly the
    feature set's types; labels: the training songs' labels. Test songs are only ever
    transformed and predicted. Every method but the baseline reads one AudioWords, fitted
    on the training songs when a group first needs it.
    """

    def __init__(
        self,
        settings: MethodSettings,
        seed: int,
        train: list[Features],
        labels: Sequence[str],
        test: list[Features],
    ) -> None:
        self.settings = settings
        self.seed = seed
        self.train = train
        self.labels = np.asarray(labels)
        self.test = test
        self.words: AudioWords | None = None

    def run(self, group: Group, methods: Sequence[str]) -> Outcome:
        """Fit `group` and predict the test songs for those of its methods in `methods`."""
        outcome = Outcome(group.name)
        if group.name != "mfcc" and self.words is None:
            start = time.perf_counter()
            words = make_pipeline(self.settings.model, self.seed).named_steps["words"]
            self.words = words.fit(self.train)
            outcome.words_seconds = time.perf_counter() - start
        start = time.perf_counter()
        wanted = [m for m in group.methods if m in methods]
        pipelines = [make_method(m, self.settings, self.seed, self.words) for m in wanted]
        fitted = max(pipelines, key=len).fit(self.train, self.labels)
        for method, pipeline in zip(wanted, pipelines, strict=True):
            predicted, reps = score(fitted[: len(pipeline)], self.test)
            outcome.predictions[method] = predicted
            outcome.representations[method] = reps
        if "kcnn" in fitted.named_steps:
            outcome.loss_curve = list(fitted.named_steps["kcnn"].loss_curve_)
        outcome.seconds = time.perf_counter() - start
        return outcome
