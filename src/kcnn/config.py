"""The settings of a kcnn model, stage by stage; every default is written here (and in
FeatureSettings) only: the estimators, the command line and saved models take theirs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self

from kcnn.features import FeatureSettings

DEVICES = ("auto", "cpu", "cuda")
"""Where the network may run: "cuda" (a GPU), "cpu", or "auto" (CUDA if present, else the CPU)."""
CLASSIFIERS = ("softmax", "svm")
"""What labels a song: the network's softmax (the mean of the KCNN's and the texture head's),
or the SVM on the song-level representation."""
DEFAULT_CLASSIFIER = "softmax"
"""The classifier of commands and methods not told which: on music the model never heard it
labelled more songs right than the SVM (README, *Measured*)."""

TEXTURE_CODES = 256
"""Values a texture code takes (each part of a segment's product quantiser, one byte)."""
TEXTURE_C = 0.1
"""Inverse L2 strength (scikit-learn's C) of the texture head's logistic regression."""
TEXTURE_EPOCHS = 10
"""The texture head learns from as many random crops as this many epochs of training draw,
but at most TEXTURE_MAX_CROPS."""
TEXTURE_MAX_CROPS = 50_000


class Section:
    """A frozen dataclass of one stage's parameters, named as the estimator's."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        return json_ready(asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Inverse of `to_dict`: the fields of this section in `data` (lists become tuples,
        other keys are left out); a missing field takes its default."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        found = {k: v for k, v in data.items() if k in names}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in found.items()})

    @classmethod
    def of(cls, estimator: Any) -> Self:
        """The section of a fitted or unfitted estimator (its parameters of this section)."""
        return cls.from_dict(estimator.get_params(deep=False))


def json_ready(value: Any) -> Any:
    """`value` with tuples turned into lists, as it reads back from JSON."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


@dataclass(frozen=True)
class WordsSettings(Section):
    """Audio words (`AudioWords`): frames per segment, phases (word sequences of a song
    starting a fraction of a word apart), PCA-whitened dimensions and codebook size per
    feature type, texture codes per segment and type (0: none), and the segments (drawn at
    random) a stage learns from at most (the codebook, the texture quantiser, and in `kcnn
    benchmark` the competitors' codes too)."""

    segment_frames: int = 4
    phases: int = 2
    n_components: int = 48
    n_words: int = 256
    texture_parts: int = 8
    max_fit_segments: int = 50_000

    def __post_init__(self) -> None:
        if self.phases > self.segment_frames:
            raise ValueError(
                f"phases ({self.phases}) must not exceed segment_frames "
                f"({self.segment_frames}): each phase starts on a frame of its own"
            )


@dataclass(frozen=True)
class KCNNSettings(Section):
    """The network and its training (`KCNNClassifier`; paper Table 1 and section 4.2)."""

    window: int = 5
    conv_units: tuple[int, ...] = (500,)
    k: int = 5
    dynamic_k: bool = False
    layer_norm: bool = True
    hidden_units: tuple[int, ...] = (300,)
    dropout: float = 0.5
    freeze_embeddings: bool = False
    learning_rate: float = 0.02
    lookup_learning_rate: float = 1.0
    l2: float = 1e-4
    momentum: float = 0.9
    epochs: int = 60
    patience: int | None = 5
    validation_fraction: float = 0.15
    crops_per_song: int = 8
    crop_words: tuple[int, int] = (8, 32)
    predict_window: int | None = 64
    batch_size: int = 32


@dataclass(frozen=True)
class SVMSettings(Section):
    """The RBF SVM on song-level representations (`SVMClassifier`, paper 4.3)."""

    C: float = 10.0
    gamma: str | float = "scale"


SECTIONS: dict[str, type[Section]] = {
    "words": WordsSettings,
    "kcnn": KCNNSettings,
    "svm": SVMSettings,
}
"""The learned stages of a model and the class of their settings."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything a kcnn model is, stage by stage, but its seed and where it runs."""

    features: FeatureSettings = field(default_factory=FeatureSettings)
    words: WordsSettings = field(default_factory=WordsSettings)
    kcnn: KCNNSettings = field(default_factory=KCNNSettings)
    svm: SVMSettings = field(default_factory=SVMSettings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: stage -> its settings."""
        return {
            "features": self.features.to_dict(),
            **{name: getattr(self, name).to_dict() for name in SECTIONS},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; a missing stage or setting takes its default."""
        return cls(
            FeatureSettings.from_dict(data.get("features", {})),
            **{name: section.from_dict(data.get(name, {})) for name, section in SECTIONS.items()},
        )
