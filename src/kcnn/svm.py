"""The RBF SVM on song-level representations (paper 4.3), with calibrated probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from kcnn.config import SVMSettings
from kcnn.errors import KcnnError


class SVMClassifier(ClassifierMixin, BaseEstimator):
    """Standardise, then an RBF SVM; probabilities by Platt scaling over inner folds.

    X: float (n_songs, dim). The SVM is fitted on all songs; the sigmoid that maps its
    scores to probabilities is fitted on scores of up to 5 stratified inner folds.
    """

    _parameter_constraints: ClassVar[dict] = {
        "C": [Interval(Real, 0, None, closed="neither")],
        "gamma": [StrOptions({"scale", "auto"}), Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        C: float = SVMSettings.C,
        gamma: str | float = SVMSettings.gamma,
        random_state: int = 0,
    ) -> None:
        self.C = C
        self.gamma = gamma
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> SVMClassifier:
        self._validate_params()
        _, counts = np.unique(y, return_counts=True)
        if counts.min() < 2:
            raise KcnnError("the SVM needs at least 2 training songs of every label")
        folds = StratifiedKFold(
            min(5, int(counts.min())), shuffle=True, random_state=self.random_state
        )
        svc = SVC(kernel="rbf", C=self.C, gamma=self.gamma, random_state=self.random_state)
        calibrated = CalibratedClassifierCV(svc, method="sigmoid", cv=folds, ensemble=False)
        self.model_ = Pipeline([("scale", StandardScaler()), ("svm", calibrated)]).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def check_fitted(self, classes: Sequence[str], dim: int) -> None:
        """Raise ValueError unless this SVM is fitted as `fit` makes it, on `dim`-dimensional
        songs of `classes` (in that order)."""
        model = getattr(self, "model_", None)
        if not isinstance(model, Pipeline) or [type(step) for _, step in model.steps] != [
            StandardScaler,
            CalibratedClassifierCV,
        ]:
            raise ValueError("not an SVM fitted by kcnn")
        check_is_fitted(model)
        if [str(c) for c in self.classes_] != list(classes) or model.n_features_in_ != dim:
            raise ValueError(
                f"an SVM of {len(self.classes_)} classes on {model.n_features_in_} dimensions, "
                f"not of the model's {len(classes)} classes on {dim}"
            )

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n_songs, n_classes), columns in `classes_` order."""
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable label of each song."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
