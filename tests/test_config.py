"""One config: its defaults are the estimators', the command line's and a saved model's."""

from __future__ import annotations

from dataclasses import fields

import pytest
from shared_data import GTZAN_MINI

from kcnn.benchmark.choices import CodeSettings
from kcnn.benchmark.methods import MethodSettings, make_method
from kcnn.benchmark.representations import (
    DeepBeliefNetwork,
    DenoisingAutoencoder,
    SparseCoding,
)
from kcnn.cli.common import model_config, parse_types
from kcnn.cli.main import build_parser
from kcnn.config import KCNNSettings, ModelConfig, SVMSettings, WordsSettings
from kcnn.extraction import FeatureExtractor, extract_batch
from kcnn.features import FeatureSettings
from kcnn.model import MusicModel, make_pipeline
from kcnn.network import KCNNConfig
from kcnn.svm import SVMClassifier
from kcnn.training import KCNNClassifier
from kcnn.words import AudioWords

GENRES = ("classical", "metal", "pop")


def test_the_default_config_is_every_estimator_default():
    assert FeatureExtractor().settings == ModelConfig().features
    assert WordsSettings.of(AudioWords()) == ModelConfig().words
    assert KCNNSettings.of(KCNNClassifier()) == ModelConfig().kcnn
    assert SVMSettings.of(SVMClassifier()) == ModelConfig().svm
    shape = KCNNConfig(n_words=(1,), embed_dims=(1,), n_classes=2)
    for name in ("window", "conv_units", "k", "dynamic_k", "hidden_units", "freeze_embeddings"):
        assert getattr(shape, name) == getattr(KCNNSettings(), name)


@pytest.mark.parametrize("coder", [SparseCoding, DenoisingAutoencoder, DeepBeliefNetwork])
def test_the_competitors_default_to_the_config(coder):
    """One number of segments for every learner, and the codes' settings."""
    model = coder()
    assert model.max_fit_segments == WordsSettings().max_fit_segments
    assert model.n_units == CodeSettings().units
    if coder is SparseCoding:
        assert model.max_iter == CodeSettings().sparse_passes
    else:
        assert model.epochs == CodeSettings().epochs


def test_the_benchmark_builds_its_sparse_coder_from_the_code_settings():
    """The passes the sparse coder makes are a setting of the benchmark, in its key."""
    settings = MethodSettings(codes=CodeSettings(units=8, sparse_passes=7))
    coder = make_method("sc-svm", settings, 0).named_steps["code"]
    assert (coder.n_units, coder.max_iter) == (8, 7)


def test_train_and_benchmark_without_options_use_the_default_config():
    train = build_parser().parse_args(["train", "data", "--out", "model"])
    assert model_config(train, parse_types(train.features)) == ModelConfig()
    bench = build_parser().parse_args(["benchmark", "data", "--out", "report"])
    assert model_config(bench, FeatureSettings.types) == ModelConfig()
    assert bench.code_units == CodeSettings().units
    assert MethodSettings().model == ModelConfig()


def test_every_setting_has_an_option_default_of_the_config():
    """The options of `add_model_options` take their defaults from the config."""
    args = vars(build_parser().parse_args(["train", "data", "--out", "model"]))
    config = ModelConfig()
    given = {key: value for key, value in args.items() if "." in key}
    assert given
    for key, value in given.items():
        stage, name = key.split(".")
        default = getattr(getattr(config, stage), name)
        assert value == (list(default) if isinstance(default, tuple) else default), key


def test_a_saved_model_keeps_its_config(tmp_path):
    config = ModelConfig(
        FeatureSettings(types=("mel", "scf"), n_mels=20, fmax=None, view_rates=()),
        WordsSettings(segment_frames=3, n_components=10, n_words=12, max_fit_segments=900),
        KCNNSettings(epochs=1, conv_units=(8, 6), hidden_units=(4,), k=2, patience=None),
        SVMSettings(C=2.5),
    )
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert {f.name for f in fields(config)} == set(config.to_dict())
    clips = [GTZAN_MINI / g / f"{g}.0000{i}.wav" for g in GENRES for i in range(3)]
    model = MusicModel(make_pipeline(config, seed=7))
    batch = extract_batch(clips, model.feature_settings, model.min_frames, progress=False)
    model.fit(batch.features, [c.parent.name for c in clips])
    model.save(tmp_path / "model")
    loaded = MusicModel.load(tmp_path / "model")
    assert loaded.config == model.config == config
    assert loaded.seed == 7
