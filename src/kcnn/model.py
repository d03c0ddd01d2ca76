"""A whole kcnn model: features -> audio words -> KCNN -> SVM, fitted, saved and loaded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import safetensors.torch
import skops.io
from sklearn.pipeline import Pipeline

from kcnn import __version__
from kcnn.atomic import atomic_directory
from kcnn.errors import KcnnError, ModelError
from kcnn.extraction import FeatureExtractor, Features
from kcnn.features import FeatureSettings
from kcnn.network import KCNN, KCNNConfig
from kcnn.svm import SVMClassifier
from kcnn.training import KCNNClassifier
from kcnn.words import AudioWords, Whitening

FORMAT_VERSION = 2
CLASSIFIERS = ("svm", "softmax")
_SVM_TYPES = [  # the types in svm.skops beyond those skops trusts by default
    "kcnn.svm.SVMClassifier",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.model_selection._split.StratifiedKFold",
]


def make_pipeline(
    features: FeatureExtractor | None = None,
    words: AudioWords | None = None,
    kcnn: KCNNClassifier | None = None,
    svm: SVMClassifier | None = None,
) -> Pipeline:
    """The four stages as a scikit-learn Pipeline: file paths in, labels out."""
    words = words or AudioWords()
    features = features or FeatureExtractor(min_frames=words.segment_frames)
    return Pipeline(
        [
            ("features", features),
            ("words", words),
            ("kcnn", kcnn or KCNNClassifier()),
            ("svm", svm or SVMClassifier()),
        ]
    )


class MusicModel:
    """A kcnn pipeline with its labels; works on precomputed frame features.

    `pipeline` has the steps features, words, kcnn, svm (see `make_pipeline`); the
    methods here skip the features step so that a batch can drop bad files first.
    """

    def __init__(self, pipeline: Pipeline | None = None, n_songs: int = 0) -> None:
        self.pipeline = pipeline or make_pipeline()
        self.n_songs = n_songs
        """Number of songs the model was fitted on."""

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

    def fit(self, features: Sequence[Features], labels: Sequence[str]) -> MusicModel:
        """Fit whitening, codebooks, network and SVM on these songs only."""
        if len(set(labels)) < 2:
            raise KcnnError("training needs songs of at least two labels")
        self.pipeline[1:].fit(list(features), np.asarray(labels))
        self.n_songs = len(labels)
        return self

    def predict_proba(self, features: Sequence[Features], classifier: str = "svm") -> np.ndarray:
        """Class probabilities (n_songs, n_classes), columns in `classes` order."""
        if classifier not in CLASSIFIERS:
            raise KcnnError(f"unknown classifier {classifier!r}; choose one of {CLASSIFIERS}")
        stages = self.pipeline[1:] if classifier == "svm" else self.pipeline[1:-1]
        return stages.predict_proba(list(features))

    def predict(self, features: Sequence[Features], classifier: str = "svm") -> np.ndarray:
        """Labels (n_songs,): the most probable class of each song."""
        return self.classes[self.predict_proba(features, classifier).argmax(axis=1)]

    def embed(self, features: Sequence[Features]) -> np.ndarray:
        """Song-level representations, float32 (n_songs, hidden_units[-1])."""
        return self.pipeline[1:-1].transform(list(features))

    def save(self, path: str | Path) -> None:
        """Write the model folder atomically: a killed save leaves the old model intact."""
        steps = self.pipeline.named_steps
        words: AudioWords = steps["words"]
        kcnn: KCNNClassifier = steps["kcnn"]
        settings = {
            "format_version": FORMAT_VERSION,
            "kcnn_version": __version__,
            "features": self.feature_settings.to_dict(),
            "words": words.get_params(),
            "kcnn": kcnn.get_params(),
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
        with atomic_directory(path) as tmp:
            (tmp / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
            np.savez(tmp / "codebook.npz", **arrays)
            safetensors.torch.save_file(kcnn.network_.state_dict(), tmp / "network.safetensors")
            skops.io.dump(steps["svm"], tmp / "svm.skops")

    @classmethod
    def load(cls, path: str | Path) -> MusicModel:
        """Load a model folder written by `save`; raises ModelError if it cannot."""
        path = Path(path)
        settings_file = path / "settings.json"
        if not settings_file.is_file():
            raise ModelError(f"{path}: not a kcnn model (no settings.json)")
        try:
            settings = json.loads(settings_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ModelError(f"{settings_file}: unreadable ({err})") from err
        found = settings.get("format_version")
        if found != FORMAT_VERSION:
            raise ModelError(
                f"{path}: model format {found} (kcnn {settings.get('kcnn_version', '?')}); "
                f"this kcnn {__version__} reads format {FORMAT_VERSION}: retrain the model"
            )
        try:
            return cls._from_files(path, settings)
        except (OSError, KeyError, ValueError, RuntimeError) as err:
            raise ModelError(f"{path}: damaged model ({err})") from err

    @classmethod
    def _from_files(cls, path: Path, settings: dict) -> MusicModel:
        words = AudioWords(**settings["words"])
        words.types_ = tuple(settings["feature_types"])
        with np.load(path / "codebook.npz", allow_pickle=False) as arrays:
            words.whitening_ = {
                n: Whitening(arrays[f"{n}/mean"], arrays[f"{n}/components"], arrays[f"{n}/scale"])
                for n in words.types_
            }
            words.centroids_ = {n: arrays[f"{n}/centroids"] for n in words.types_}
        params = settings["kcnn"]
        params.update((k, tuple(params[k])) for k in ("conv_units", "hidden_units") if k in params)
        kcnn = KCNNClassifier(**params)
        kcnn.classes_ = np.asarray(settings["classes"])
        kcnn.network_ = KCNN(KCNNConfig.from_dict(settings["network"]))
        kcnn.network_.load_state_dict(safetensors.torch.load_file(path / "network.safetensors"))
        kcnn.network_.eval()
        svm_file = path / "svm.skops"
        untrusted = skops.io.get_untrusted_types(file=svm_file)
        unexpected = [t for t in untrusted if t not in _SVM_TYPES]
        if unexpected:
            raise ModelError(f"{svm_file}: holds unexpected types {unexpected}; refusing to load")
        svm = skops.io.load(svm_file, trusted=untrusted)
        fs = FeatureSettings.from_dict(settings["features"])
        features = FeatureExtractor.from_settings(fs, min_frames=words.segment_frames)
        return cls(make_pipeline(features, words, kcnn, svm), settings.get("training_songs", 0))
