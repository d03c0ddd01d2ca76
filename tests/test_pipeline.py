"""The stages as scikit-learn estimators, and what each learned stage is allowed to see."""

from __future__ import annotations

import numpy as np
from shared_data import GTZAN_MINI
from sklearn.base import clone

from kcnn import model as model_module
from kcnn.cli import train as train_command
from kcnn.cli.main import main
from kcnn.config import (
    DEFAULT_CLASSIFIER,
    KCNNSettings,
    ModelConfig,
    SVMSettings,
    WordsSettings,
)
from kcnn.features import FeatureSettings
from kcnn.model import MusicModel, config_of, make_pipeline
from kcnn.svm import SVMClassifier
from kcnn.training import KCNNClassifier
from kcnn.words import AudioWords

GENRES = ("classical", "metal", "pop")


def test_the_pipeline_takes_file_paths_and_clones():
    paths = [GTZAN_MINI / g / f"{g}.{n:05d}.wav" for g in GENRES for n in range(4)]
    labels = [p.parent.name for p in paths]
    config = ModelConfig(
        FeatureSettings(types=("mel",)),
        WordsSettings(n_words=32),
        KCNNSettings(epochs=3, conv_units=(16,), hidden_units=(8,)),
        SVMSettings(C=1.0),
    )
    pipe = make_pipeline(config)
    assert config_of(pipe) == config
    copy = clone(pipe)
    assert copy.get_params()["kcnn__epochs"] == 3
    pipe.fit(paths, labels)
    assert set(pipe.predict(paths[:3])) <= set(GENRES)
    assert pipe.predict_proba(paths[:3]).shape == (3, 3)
    assert pipe[:-1].transform(paths[:2]).shape == (2, 8)
    assert not hasattr(copy.named_steps["kcnn"], "network_")


def test_train_fits_every_stage_on_the_training_part_only(tmp_path, monkeypatch):
    """Record which songs each learned stage is fitted on, and which are scored."""
    data = tmp_path / "data"
    for genre in GENRES:
        (data / genre).mkdir(parents=True)
        for n in range(5):
            (data / genre / f"{n}.wav").symlink_to(GTZAN_MINI / genre / f"{genre}.{n:05d}.wav")
    seen: dict[str, list] = {"words": [], "kcnn": [], "svm": [], "scored": []}

    def fingerprint(song: dict) -> bytes:
        return song["mel"][:8].tobytes()

    fit_words = AudioWords.fit

    def spy_words(self, X, y=None):
        seen["words"].append([fingerprint(s) for s in X])
        return fit_words(self, X, y)

    fit_kcnn = KCNNClassifier.fit

    def spy_kcnn(self, X, y, groups=None, after_epoch=None):
        seen["kcnn"].append(len(X))
        return fit_kcnn(self, X, y, groups, after_epoch)

    fit_svm = SVMClassifier.fit

    def spy_svm(self, X, y):
        seen["svm"].append(len(X))
        return fit_svm(self, X, y)

    predict = MusicModel.predict

    def spy_predict(self, features, classifier=DEFAULT_CLASSIFIER):
        seen["scored"] += [fingerprint(s) for s in features]
        return predict(self, features, classifier)

    monkeypatch.setattr(train_command, "available_cores", lambda: 1)  # all fits in this process
    monkeypatch.setattr(AudioWords, "fit", spy_words)
    monkeypatch.setattr(KCNNClassifier, "fit", spy_kcnn)
    monkeypatch.setattr(SVMClassifier, "fit", spy_svm)
    monkeypatch.setattr(MusicModel, "predict", spy_predict)
    args = ["train", data, "--out", tmp_path / "m", "--test-size", "0.4", "--epochs", "2"]
    args += ["--words", "16", "--conv-units", "20", "--hidden-units", "10", "--svm-c", "1", "-q"]
    assert main([str(a) for a in args]) == 0
    # The held-out report's model, then the final model refitted on every song.
    assert [len(w) for w in seen["words"]] == seen["kcnn"] == seen["svm"] == [9, 15]
    held_out, final = (set(w) for w in seen["words"])
    assert len(set(seen["scored"])) == 6
    assert not held_out & set(seen["scored"])
    assert len(held_out) == 9 and final == held_out | set(seen["scored"])


def test_prediction_and_embedding_hold_the_words_of_a_few_songs_at_a_time(tiny_model, monkeypatch):
    _, folder, _ = tiny_model
    model = MusicModel.load(folder)
    paths = [GTZAN_MINI / g / f"{g}.{n:05d}.wav" for g in ("blues", "metal") for n in (6, 7, 8)]
    features = model.pipeline.named_steps["features"].transform(paths)
    proba, vectors = model.predict_proba(features), model.embed(features)
    held = []
    transform = AudioWords.transform

    def spy(self, X):
        held.append(len(X))
        return transform(self, X)

    monkeypatch.setattr(model_module, "CHUNK_SONGS", 2)
    monkeypatch.setattr(AudioWords, "transform", spy)
    np.testing.assert_allclose(model.predict_proba(features), proba, atol=1e-5)
    np.testing.assert_allclose(model.embed(features), vectors, atol=1e-5)
    assert held == [2, 2, 2] * 2
