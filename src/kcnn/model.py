"""A whole kcnn model: features -> audio words -> KCNN -> SVM, fitted, saved and loaded."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import skops.io
import torch
from sklearn.pipeline import Pipeline

from kcnn import __version__
from kcnn.atomic import OutputKind, atomic_directory, json_marker, restore
from kcnn.audio import MAX_DURATION
from kcnn.config import (
    CLASSIFIERS,
    DEFAULT_CLASSIFIER,
    SECTIONS,
    TEXTURE_CODES,
    ModelConfig,
    WordsSettings,
)
from kcnn.errors import KcnnError, ModelError, damaged
from kcnn.extraction import FeatureExtractor, Features
from kcnn.features import FEATURE_TYPES, FeatureSettings
from kcnn.network import KCNN, KCNNConfig
from kcnn.svm import SVMClassifier
from kcnn.training import KCNNClassifier
from kcnn.words import AudioWords, Whitening

FORMAT_VERSION = 7
"""7: texture codes and the texture head (`WordsSettings.texture_parts`); a model of format
3 to 6 had none and is read without. 6: layer normalisation of the pooled features
(`KCNNSettings.layer_norm`); a model of format 3 to 5 had none and is read without. 5:
words in phases (`WordsSettings.phases`); a model of format 3 or 4 was fitted on one phase
and is read with one. 4: tanh between stacked convolution layers; format 3 had sigmoids
there, and a format-3 model of one convolution layer (none in between) computes the same
and is read."""
EARLIER_VALUES = {
    5: {"words": {"phases": 1}},
    6: {"kcnn": {"layer_norm": False}, "network": {"layer_norm": False}},
    7: {"words": {"texture_parts": 0}, "network": {"texture_parts": 0, "texture_width": 0}},
}
"""Format -> the settings it added, with the value a model of an earlier format was fitted
with (such a model's settings.json lacks them; a missing field otherwise takes its default)."""
CHUNK_SONGS = 256
"""Songs whose audio words prediction and embedding hold at once: their memory then stays
flat as a collection grows (the representations and probabilities grow, a few kB a song)."""
MODEL = OutputKind("kcnn model", json_marker("settings.json", "format_version"))
"""A model folder: settings.json holds a format_version."""
_SVM_TYPES = [  # the types in svm.skops beyond those skops trusts by default
    "kcnn.svm.SVMClassifier",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.model_selection._split.StratifiedKFold",
]


def make_pipeline(
    config: ModelConfig | None = None,
    seed: int = 0,
    *,
    device: str = "auto",
    progress: bool = False,
    max_duration: float = MAX_DURATION,
) -> Pipeline:
    """The four stages of `config` as a scikit-learn Pipeline: file paths in, labels out.

    seed: random_state of every learned stage; device, progress: where the network runs and
    whether it shows its epochs; max_duration: longest audio decoded (seconds).
    """
    config = config or ModelConfig()
    return Pipeline(
        [
            (
                "features",
                FeatureExtractor.from_settings(
                    config.features,
                    min_frames=config.words.segment_frames,
                    max_duration=max_duration,
                ),
            ),
            ("words", AudioWords(**asdict(config.words), random_state=seed)),
            (
                "kcnn",
                KCNNClassifier(
                    **asdict(config.kcnn), random_state=seed, progress=progress, device=device
                ),
            ),
            ("svm", SVMClassifier(**asdict(config.svm), random_state=seed)),
        ]
    )


def config_of(pipeline: Pipeline) -> ModelConfig:
    """The config of a pipeline with `make_pipeline`'s stages (whatever their parameters)."""
    steps = pipeline.named_steps
    return ModelConfig(
        steps["features"].settings,
        **{name: section.of(steps[name]) for name, section in SECTIONS.items()},
    )


class MusicModel:
    """A kcnn pipeline with its labels; works on precomputed frame features.

    `pipeline` has the steps features, words, kcnn, svm (see `make_pipeline`); the
    methods here skip the features step so that a batch can drop bad files first. They
    read the songs of `features` one at a time (a `StoredFeatures` stays on disk): what
    they hold for all songs are the audio words and the representations.
    """

    def __init__(self, pipeline: Pipeline | None = None, n_songs: int = 0) -> None:
        self.pipeline = pipeline or make_pipeline()
        self.n_songs = n_songs
        """Number of songs the model was fitted on."""

    @property
    def config(self) -> ModelConfig:
        return config_of(self.pipeline)

    @property
    def seed(self) -> int:
        """The random_state of the learned stages."""
        return self.pipeline.named_steps["words"].random_state

    @property
    def feature_settings(self) -> FeatureSettings:
        return self.pipeline.named_steps["features"].settings

    @property
    def min_frames(self) -> int:
        """Frames a song needs to make one audio word."""
        return self.pipeline.named_steps["words"].segment_frames

    @property
    def classes(self) -> np.ndarray:
        return self.pipeline.named_steps["kcnn"].classes_

    def fit(
        self,
        features: Sequence[Features],
        labels: Sequence[str],
        after_epoch: Callable[[int, int], bool] | None = None,
    ) -> MusicModel:
        """Fit whitening, codebooks, network and SVM on these songs only; `after_epoch` is
        the network's (see `KCNNClassifier.fit`)."""
        if len(set(labels)) < 2:
            raise KcnnError("training needs songs of at least two labels")
        hooks = {} if after_epoch is None else {"kcnn__after_epoch": after_epoch}
        self.pipeline[1:].fit(features, np.asarray(labels), **hooks)
        self.n_songs = len(labels)
        return self

    def predict_proba(
        self, features: Sequence[Features], classifier: str = DEFAULT_CLASSIFIER
    ) -> np.ndarray:
        """Class probabilities (n_songs, n_classes), columns in `classes` order."""
        if classifier not in CLASSIFIERS:
            raise KcnnError(f"unknown classifier {classifier!r}; choose one of {CLASSIFIERS}")
        stages = self.pipeline[1:] if classifier == "svm" else self.pipeline[1:-1]
        return np.concatenate([stages.predict_proba(part) for part in _chunks(features)])

    def predict(
        self, features: Sequence[Features], classifier: str = DEFAULT_CLASSIFIER
    ) -> np.ndarray:
        """Labels (n_songs,): the most probable class of each song."""
        return self.classes[self.predict_proba(features, classifier).argmax(axis=1)]

    def embed(self, features: Sequence[Features]) -> np.ndarray:
        """Song-level representations, float32 (n_songs, hidden_units[-1])."""
        stages = self.pipeline[1:-1]
        return np.concatenate([stages.transform(part) for part in _chunks(features)])

    def save(self, path: str | Path) -> None:
        """Write the model folder atomically: a killed save leaves the old model intact.

        Refuses (KcnnError) to replace anything at `path` but a model (`MODEL.check`).
        """
        steps = self.pipeline.named_steps
        words: AudioWords = steps["words"]
        kcnn: KCNNClassifier = steps["kcnn"]
        settings = {
            "format_version": FORMAT_VERSION,
            "kcnn_version": __version__,
            **self.config.to_dict(),
            "seed": self.seed,
            "network": kcnn.network_.config.to_dict(),
            "classes": [str(c) for c in kcnn.classes_],
            "training_songs": self.n_songs,
            "feature_types": list(words.types_),
        }
        arrays: dict[str, np.ndarray] = {}
        for name in words.types_:
            white = words.whitening_[name]
            arrays[f"{name}/mean"] = white.mean
            arrays[f"{name}/components"] = white.components
            arrays[f"{name}/scale"] = white.scale
            arrays[f"{name}/centroids"] = words.centroids_[name]
            if name in words.texture_:
                arrays[f"{name}/texture"] = words.texture_[name]
        with atomic_directory(path, MODEL) as tmp:
            (tmp / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
            np.savez(tmp / "codebook.npz", **arrays)
            weights = {name: w.cpu() for name, w in kcnn.network_.state_dict().items()}
            safetensors.torch.save_file(weights, tmp / "network.safetensors")
            skops.io.dump(steps["svm"], tmp / "svm.skops")

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> MusicModel:
        """Load a model folder written by `save`; raises a one-line ModelError if it cannot.

        device: where the network runs (see `KCNNClassifier`); its weights are saved and
        loaded on the CPU, so a model trained anywhere loads anywhere.
        """
        path = Path(path)
        restore(path)
        settings_file = path / "settings.json"
        if not settings_file.is_file():
            raise ModelError(f"{path}: not a kcnn model (no settings.json)")
        with damaged(settings_file, ModelError):
            settings = json.loads(settings_file.read_bytes().decode("utf-8"))
            if not isinstance(settings, dict):
                raise ValueError("not a JSON object")
            found = settings.get("format_version")
            _check_value("format_version", found, FORMAT_VERSION)
        if found != FORMAT_VERSION and not _same_as_current(found, settings):
            raise ModelError(
                f"{path}: model format {found} (kcnn {settings.get('kcnn_version', '?')}); "
                f"this kcnn {__version__} reads format {FORMAT_VERSION}: retrain the model"
            )
        for version, added in EARLIER_VALUES.items():
            if found < version:  # saved before these settings came: fitted as they say
                for section, values in added.items():
                    settings[section] = {**settings.get(section, {}), **values}
        with damaged(settings_file, ModelError):
            network = _check_settings(settings)
            pipeline = make_pipeline(
                ModelConfig.from_dict(settings), settings["seed"], device=device
            )
        steps = pipeline.named_steps
        words: AudioWords = steps["words"]
        kcnn: KCNNClassifier = steps["kcnn"]
        words.types_ = tuple(settings["feature_types"])
        kcnn.classes_ = np.asarray(settings["classes"])
        kcnn.network_ = KCNN(network)
        _load_codebook(path / "codebook.npz", words, network)
        weights_file = path / "network.safetensors"
        with damaged(weights_file, ModelError):
            weights = safetensors.torch.load_file(weights_file)
            if not all(torch.isfinite(w).all() for w in weights.values()):
                raise ValueError("weights that are not finite (NaN or inf)")
            kcnn.network_.load_state_dict(weights)
        kcnn.network_.eval()
        pipeline.set_params(svm=_load_svm(path / "svm.skops", settings["classes"], network))
        return cls(pipeline, settings["training_songs"])


def _chunks(features: Sequence[Features]) -> list[Sequence[Features]]:
    """`features` in runs of `CHUNK_SONGS` songs (one run if there are none)."""
    return [
        features[start : start + CHUNK_SONGS] for start in range(0, len(features), CHUNK_SONGS)
    ] or [features]


def _same_as_current(version: int, settings: dict[str, Any]) -> bool:
    """Whether a model of an earlier format `version` computes as it would in this one (with
    `EARLIER_VALUES` for the settings added since)."""
    network = settings.get("network")
    layers = network.get("conv_units") if isinstance(network, dict) else None
    one_layer = isinstance(layers, list) and len(layers) == 1
    return 4 <= version < FORMAT_VERSION or (version == 3 and one_layer)


class _OneOf:
    """An example of settings.json that stands for a value of the type of any of `examples`."""

    def __init__(self, *examples: Any) -> None:
        self.examples = examples


def _settings_examples() -> dict[str, Any]:
    """A value of the right type for each field of settings.json but format_version (see
    `_same_type`: fmax, patience and predict_window are a number or null)."""
    config = ModelConfig().to_dict()
    config["features"]["fmax"] = None
    config["kcnn"].update(patience=None, predict_window=None)
    config["svm"]["gamma"] = _OneOf("scale", 1.0)
    return {
        "kcnn_version": __version__,
        **config,
        "seed": 0,
        "network": KCNNConfig(n_words=(1,), embed_dims=(1,), n_classes=2).to_dict(),
        "classes": ["label"],
        "feature_types": ["mel"],
        "training_songs": 1,
    }


def _same_type(value: Any, example: Any) -> bool:
    """True if `value` (read from JSON) has the type of `example`; None stands for a number
    or null, a list or tuple for a list of items like its first, a `_OneOf` for any of its
    examples."""
    if isinstance(example, _OneOf):
        return any(_same_type(value, e) for e in example.examples)
    if isinstance(example, bool) or isinstance(value, bool):
        return isinstance(example, bool) and isinstance(value, bool)
    if isinstance(example, int):
        return isinstance(value, int)
    if isinstance(example, float) or example is None:
        return (example is None and value is None) or (
            isinstance(value, int | float) and math.isfinite(value)
        )
    if isinstance(example, list | tuple):
        return isinstance(value, list) and all(_same_type(v, example[0]) for v in value)
    return isinstance(value, type(example))


def _check_value(name: str, value: Any, example: Any) -> None:
    """Raise ValueError unless `value` has the type of `example` (field by field for a dict)."""
    if not isinstance(example, dict):
        if not _same_type(value, example):
            raise ValueError(f"{name} is {value!r}, not of the type of {example!r}")
        return
    if not isinstance(value, dict) or not set(value) <= set(example):
        raise ValueError(f"{name} is {value!r}, not an object of fields among {sorted(example)}")
    for key, item in value.items():
        _check_value(f"{name}.{key}", item, example[key])


def _check_settings(settings: dict[str, Any]) -> KCNNConfig:
    """The network's shape; raises ValueError naming the first field of settings that is wrong.

    A field left out of features, words, kcnn or network takes its default value.
    """
    for name, example in _settings_examples().items():
        _check_value(name, settings.get(name), example)
    classes, types = settings["classes"], settings["feature_types"]
    config = KCNNConfig.from_dict(settings["network"])
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"classes {classes} are not two or more distinct labels")
    if not types or len(set(types)) != len(types) or not set(types) <= set(FEATURE_TYPES):
        raise ValueError(f"feature_types {types} are not distinct feature types")
    if config.n_classes != len(classes) or len(config.n_words) != len(types):
        raise ValueError("network does not match classes and feature_types")
    if WordsSettings.from_dict(settings["words"]).texture_parts != config.texture_parts:
        raise ValueError("network does not match words.texture_parts")
    layers = (config.n_words, config.embed_dims, config.conv_units, config.hidden_units)
    if not all(layers) or min(config.window, config.k, *(n for layer in layers for n in layer)) < 1:
        raise ValueError("network has layers of no size")
    return config


def _load_codebook(file: Path, words: AudioWords, config: KCNNConfig) -> None:
    """Set `words`' whitening, centroids and texture quantisers from `file`, checked against
    the network."""
    with damaged(file, ModelError), np.load(file, allow_pickle=False) as arrays:
        words.whitening_, words.centroids_, words.texture_ = {}, {}, {}
        texture = (config.texture_parts, TEXTURE_CODES, config.texture_width)
        for name, n_words in zip(words.types_, config.n_words, strict=True):
            mean, components, scale, centroids = (
                arrays[f"{name}/{part}"] for part in ("mean", "components", "scale", "centroids")
            )
            if not all(np.isfinite(a).all() for a in (mean, components, scale, centroids)):
                raise ValueError(f"{name}: weights that are not finite (NaN or inf)")
            c = len(scale)
            if (
                components.shape != (c, len(mean))
                or centroids.shape != (n_words, c)
                or scale.ndim != 1
            ):
                raise ValueError(f"{name}: arrays of mismatched shapes")
            words.whitening_[name] = Whitening(mean, components, scale)
            words.centroids_[name] = centroids
            if config.texture_parts:
                quantiser = arrays[f"{name}/texture"]
                if quantiser.shape != texture or not np.isfinite(quantiser).all():
                    raise ValueError(f"{name}: texture quantiser of wrong shape or not finite")
                words.texture_[name] = quantiser


def _load_svm(file: Path, classes: list[str], config: KCNNConfig) -> SVMClassifier:
    """The SVM in `file`, loaded only if it holds kcnn's SVM fitted for this network."""
    with damaged(file, ModelError):
        untrusted = skops.io.get_untrusted_types(file=file)
        unexpected = [t for t in untrusted if t not in _SVM_TYPES]
        if unexpected:
            raise ModelError(f"{file}: holds unexpected types {unexpected}; refusing to load")
        svm = skops.io.load(file, trusted=untrusted)
        if type(svm) is not SVMClassifier:
            raise ValueError(f"holds a {type(svm).__name__}, not kcnn's SVM")
        svm.check_fitted(classes, config.hidden_units[-1])
    return svm
