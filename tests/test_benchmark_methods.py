"""The compared methods: each fits on training songs only (a leak would be caught here)."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import numpy as np
import pytest
from shared_data import GTZAN_MINI

from kcnn import model as model_module
from kcnn.benchmark.choices import METHODS, CodeSettings
from kcnn.benchmark.methods import (
    GROUPS,
    FoldMethods,
    MethodSettings,
    groups_for,
    make_method,
)
from kcnn.benchmark.representations import (
    DeepBeliefNetwork,
    DenoisingAutoencoder,
    SparseCoding,
)
from kcnn.config import KCNNSettings, ModelConfig, WordsSettings
from kcnn.extraction import extract_batch
from kcnn.features import FeatureSettings
from kcnn.svm import SVMClassifier

TINY = MethodSettings(
    ModelConfig(
        words=WordsSettings(n_words=16, n_components=12, max_fit_segments=1_000),
        kcnn=KCNNSettings(epochs=2, conv_units=(16,), hidden_units=(8,)),
    ),
    CodeSettings(units=8, epochs=2),
)
GENRES = ("classical", "metal", "pop")
SAME = {"rtol": 1e-4, "atol": 1e-5}
"""Tolerance between float32 representations computed in other batches or by another fit on
the same songs: their sums are rounded in another order (by the CPU's kernels and threads)."""


@pytest.fixture(scope="module")
def songs():
    """Frame features (mel, sfm, mfcc) of clips 0-4 of three genres, and their labels."""
    clips = [GTZAN_MINI / g / f"{g}.0000{i}.wav" for g in GENRES for i in range(5)]
    settings = FeatureSettings(types=("mel", "sfm", "mfcc"))
    batch = extract_batch(clips, settings, min_frames=4, progress=False)
    assert len(batch.kept) == len(clips)
    return batch.features, [c.parent.name for c in clips]


def fold_outcomes(train, labels, test, features):
    """Every method's predictions and representations of `test`, after fitting on `train`."""
    types = {"mfcc": ("mfcc",), "mel+sfm": ("mel", "sfm")}[features]
    only = [[{t: s[t] for t in types} for s in part] for part in (train, test)]
    learner = FoldMethods(TINY, 3, only[0], labels, only[1])
    outcomes = {}
    for group in groups_for(list(METHODS), "mfcc" if features == "mfcc" else "all"):
        outcome = learner.run(group, list(METHODS))
        for method, predicted in outcome.predictions.items():
            outcomes[method] = (predicted, outcome.representations[method])
    return outcomes


class SpySVM(SVMClassifier):
    """An SVMClassifier that records how many songs each fit saw."""

    fitted_sizes: ClassVar[list[int]] = []

    def fit(self, X, y):
        self.fitted_sizes.append(len(X))
        return super().fit(X, y)


@pytest.mark.parametrize("features", ["mel+sfm", "mfcc"])
def test_no_method_learns_from_the_test_songs(songs, features, monkeypatch):
    """Changing a test song changes nothing about the other test songs' results.

    If any stage (whitening, codebook, dictionary, autoencoder, RBMs, network) were fitted
    on test songs too, replacing one test song by noise would move the fitted model, and
    with it the representations of the other test songs. Every SVM (with its scaler) must
    see exactly the training songs.
    """
    monkeypatch.setattr(model_module, "SVMClassifier", SpySVM)
    SpySVM.fitted_sizes = []
    feats, labels = songs
    train_idx = [i for i in range(len(feats)) if i % 5 < 3]
    test_idx = [i for i in range(len(feats)) if i % 5 >= 3]
    train = [feats[i] for i in train_idx]
    y = [labels[i] for i in train_idx]
    test = [feats[i] for i in test_idx]
    rng = np.random.default_rng(0)
    poisoned = [{t: rng.normal(5.0, 3.0, a.shape).astype(a.dtype) for t, a in test[0].items()}]
    before = fold_outcomes(train, y, test, features)
    after = fold_outcomes(train, y, poisoned + test[1:], features)
    expected = [m for g in GROUPS for m in g.methods if (m == "mfcc-svm") == (features == "mfcc")]
    assert sorted(before) == sorted(expected)
    for method, (predicted, reps) in before.items():
        predicted_after, reps_after = after[method]
        assert predicted_after[1:] == predicted[1:], method
        np.testing.assert_allclose(reps_after[1:], reps[1:], **SAME, err_msg=method)
        assert len(predicted) == len(test) and set(predicted) <= set(GENRES)
    n_svms = sum(m.endswith("-svm") for m in expected)
    assert SpySVM.fitted_sizes == [len(train)] * (2 * n_svms)


def test_the_leak_check_would_catch_a_leak(songs):
    """The same check on a coder fitted on training and test songs fails, as it should."""
    feats, _ = songs
    segs = [np.asarray(s["mel"][: 4 * (len(s["mel"]) // 4)]).reshape(-1, 160) for s in feats]
    train, test = segs[:9], segs[9:]
    poisoned = [segs[9] + 50.0, *test[1:]]
    leaky = [DenoisingAutoencoder(n_units=8, epochs=1).fit(train + t) for t in (test, poisoned)]
    moved = [coder.transform(test[1:]) for coder in leaky]
    assert not np.allclose(moved[0], moved[1], **SAME)


@pytest.mark.parametrize("coder", [SparseCoding, DenoisingAutoencoder, DeepBeliefNetwork])
def test_a_song_is_the_max_of_its_segment_codes(coder):
    rng = np.random.default_rng(1)
    songs = [rng.normal(size=(n, 6)).astype(np.float32) for n in (5, 9, 1)]
    model = coder(n_units=4, max_fit_segments=100, random_state=0)
    if coder is not SparseCoding:
        model.set_params(epochs=2)
    pooled = model.fit(songs).transform(songs)
    assert pooled.dtype == np.float32 and len(pooled) == 3
    for song, row in zip(songs, pooled, strict=True):
        np.testing.assert_allclose(row, model._encode(song).max(axis=0), **SAME)


def test_the_methods_of_a_group_share_its_longest_pipeline():
    """Each method of a group is the first steps of the group's longest pipeline."""
    for group in GROUPS:
        pipelines = [make_method(m, TINY, 0) for m in group.methods]
        longest = max(pipelines, key=len)
        for pipeline in pipelines:
            steps = longest.steps[: len(pipeline)]
            assert [name for name, _ in steps] == [name for name, _ in pipeline.steps]
            for (_, mine), (_, theirs) in zip(steps, pipeline.steps, strict=True):
                assert repr(mine) == repr(theirs), group.name


@pytest.mark.parametrize("method", ["kcnn-svm", "sc-svm"])
def test_a_method_is_built_from_its_config(songs, method):
    """A changed setting reaches the method: 64 audio words, and the competitors learn from
    the config's segments."""
    feats, labels = songs
    train = [{"mel": s["mel"]} for s in feats]
    config = replace(TINY.model, words=replace(TINY.model.words, n_words=64))
    fitted = make_method(method, replace(TINY, model=config), 0).fit(train, labels)
    words = fitted[0] if method == "kcnn-svm" else fitted.named_steps["segments"].words_
    assert words.centroids_["mel"].shape[0] == 64
    if method == "sc-svm":
        code = fitted.named_steps["code"]
        assert code.max_fit_segments == 1_000 and code.n_units == 8
    else:
        assert fitted.named_steps["kcnn"].network_.config.n_words == (64,)
