"""What a benchmark can be asked to run: its methods, feature sets and the competitors'
code settings. Imports nothing heavy, so that the command line reads them at once."""

from __future__ import annotations

from dataclasses import dataclass

METHODS: dict[str, str] = {
    "sc-svm": "Sparse coding + SVM",
    "ae-svm": "Autoencoder + SVM",
    "dbn-svm": "DBN + SVM",
    "kcnn-ult": "KCNN ULT",
    "kcnn": "KCNN",
    "kcnn-k1-svm": "KCNN (k = 1) + SVM",
    "kcnn-svm": "KCNN + SVM",
    "mfcc-svm": "MFCC statistics + SVM",
}
"""Method key -> its name in the tables, in the order of the paper's Table 2 (the KCNN's k is
the model's, `--k`, given with the settings; the paper's is 5)."""
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
class CodeSettings:
    """The competitors' codes: units (dictionary atoms, autoencoder and RBM units), the
    passes of the autoencoder and of each RBM over their training segments, and the most
    coordinate-descent passes of sparse coding per segment."""

    units: int = 256
    epochs: int = 20
    sparse_passes: int = 100
