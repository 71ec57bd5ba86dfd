"""How a new task's data is prepared for an artifact: one typed record, written by training, read at fit time.

Family mode (:func:`automl_meta.meta_fit`) and the task distributions write it into the artifact's
``task_family``; the scikit-learn estimators and :meth:`automl_meta.MetaArtifact.adapt` read it from
there, so both prepare data alike. The manifest keeps its keys flat in ``task_family`` (as artifacts
written before this record did), so every existing artifact reads into it unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..exceptions import TaskError
from ._scaling import _from_standard, _standardise_features, _to_standard
from ._schema import _check_field, _invalid, _spec

FEATURE_CLIP = 6.0  # standardised features beyond +-6 are clipped: one outlier must not dominate an embedding


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _numbers(positive: bool) -> Any:
    return lambda v: (
        v is None
        or isinstance(v, (list, tuple))
        and len(v) > 0
        and all(_is_number(x) and (x > 0 or not positive) for x in v)
    )


def _labels(v: Any) -> bool:
    if v is None:
        return True
    kinds = {
        bool if isinstance(x, bool) else str if isinstance(x, str) else float if _is_number(x) else None
        for x in (v if isinstance(v, (list, tuple)) else [None])
    }
    return len(kinds) == 1 and None not in kinds and len(set(v)) == len(v) >= 2


@dataclass(frozen=True)
class Preprocessing:
    """How an artifact's new data is prepared: the family's scaling, clipping, classes and features.

    Parameters
    ----------
    feature_mean, feature_scale : tuple of float, optional
        Statistics of a family of datasets: features are standardised with them, so a new member
        with few rows is scaled as in meta-training. Without them each dataset is standardised on
        its own by the estimators, and :meth:`~automl_meta.MetaArtifact.adapt` takes features as given.
    feature_clip : float, default=6.0
        Standardised features are clipped to ``[-feature_clip, feature_clip]``.
    target_mean, target_scale : tuple of float, optional
        A regression family's target statistics: targets are standardised with them for
        adaptation, and predictions mapped back.
    classes : tuple, optional
        A classification family's labels, in the order of the model's outputs.
    feature_names : tuple of str, optional
        The family's feature columns; data with other columns is refused.
    shared_features : bool, default=False
        Whether the artifact was meta-trained on related datasets sharing their features (a family
        artifact, which serves only data of that width), rather than on unrelated tables.

    Examples
    --------
    >>> import numpy as np
    >>> from automl_meta.artifacts.preprocessing import Preprocessing
    >>> prep = Preprocessing.from_dict({"feature_mean": [1.0], "feature_scale": [2.0], "shared_features": True})
    >>> prep.transform_features(np.array([[3.0], [101.0]]))
    array([[1.],
           [6.]])
    >>> prep.to_dict()
    {'feature_mean': [1.0], 'feature_scale': [2.0], 'feature_clip': 6.0, 'shared_features': True}
    >>> Preprocessing.from_dict({"classes": "ab"}, "f.ameta")
    Traceback (most recent call last):
    ...
    automl_meta.exceptions.ArtifactError: 'f.ameta' has an invalid manifest: field 'task_family.classes' must be ...
    """

    feature_mean: tuple[float, ...] | None = _spec("a list of finite numbers or null", _numbers(False), default=None)
    feature_scale: tuple[float, ...] | None = _spec(
        "a list of positive finite numbers or null", _numbers(True), default=None
    )
    feature_clip: float = _spec("a positive number", lambda v: _is_number(v) and v > 0, default=FEATURE_CLIP)
    target_mean: tuple[float, ...] | None = _spec("a list of finite numbers or null", _numbers(False), default=None)
    target_scale: tuple[float, ...] | None = _spec(
        "a list of positive finite numbers or null", _numbers(True), default=None
    )
    classes: tuple[Any, ...] | None = _spec(
        "a list of at least 2 distinct labels, all strings or all numbers, or null", _labels, default=None
    )
    feature_names: tuple[str, ...] | None = _spec(
        "a list of strings or null",
        lambda v: v is None or isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v),
        default=None,
    )
    shared_features: bool = _spec("true or false", lambda v: isinstance(v, bool), default=False)

    @classmethod
    def from_dict(cls, task_family: Mapping[str, Any], source: object = "<artifact>") -> Preprocessing:
        """Read the record from an artifact's ``task_family`` (``source`` names the file in errors).

        A key that is missing or null takes its default; other keys are ignored.

        Raises
        ------
        ArtifactError
            A key holds a value of the wrong type, or a mean comes without its scale.
        """
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = task_family.get(f.name)
            if value is not None:
                _check_field(source, f"task_family.{f.name}", f, value)
                values[f.name] = tuple(value) if isinstance(value, (list, tuple)) else value
        for what in ("feature", "target"):
            # Given lists are never empty, so this also catches a mean without its scale.
            if len(values.get(f"{what}_mean", ())) != len(values.get(f"{what}_scale", ())):
                raise _invalid(
                    source, f"task_family.{what}_mean", f"must come with 'task_family.{what}_scale', of the same length"
                )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The keys written into ``task_family`` (JSON values; a field left at None is left out)."""
        return {
            f.name: list(v) if isinstance(v, tuple) else v
            for f in dataclasses.fields(self)
            if (v := getattr(self, f.name)) is not None
        }

    @property
    def scales_features(self) -> bool:
        """Whether features are standardised with the family's statistics (rather than each dataset's own)."""
        return self.feature_mean is not None

    def class_labels(self) -> np.ndarray | None:
        """The family's classes as a sorted array (the order of the model's outputs), or None."""
        return None if self.classes is None else np.unique(np.asarray(self.classes))

    def transform_features(self, X: ArrayLike) -> np.ndarray:
        """Features standardised with the family's statistics and clipped (unchanged without statistics)."""
        X = np.asarray(X, dtype=np.float64)
        mean = self.feature_mean
        if mean is None:
            return X
        if X.ndim != 2 or X.shape[1] != len(mean):
            raise TaskError(f"X must have shape (n_samples, {len(mean)}) (the family's features), got {X.shape}.")
        return _standardise_features(X, np.asarray(mean), np.asarray(self.feature_scale), self.feature_clip)

    def encode_labels(self, y: ArrayLike) -> np.ndarray:
        """Labels as indices into :meth:`class_labels` (unchanged without classes)."""
        labels = self.class_labels()
        if labels is None:
            return np.asarray(y)
        unknown = np.setdiff1d(y, labels)
        if unknown.size:
            raise TaskError(f"y has classes {unknown.tolist()} that the artifact's family lacks ({labels.tolist()}).")
        return np.searchsorted(labels, y)

    def transform_targets(self, y: ArrayLike) -> np.ndarray:
        """Targets (n_samples, n_targets) standardised with the family's statistics (unchanged without them)."""
        y = np.asarray(y, dtype=np.float64)
        if self.target_mean is None:
            return y
        return _to_standard(y.reshape(len(y), -1), np.asarray(self.target_mean), np.asarray(self.target_scale))

    def inverse_transform_targets(self, z: np.ndarray) -> np.ndarray:
        """Predictions (n_samples, n_targets) mapped back from standardised units (unchanged without statistics)."""
        if self.target_mean is None:
            return z
        return _from_standard(z, np.asarray(self.target_mean), np.asarray(self.target_scale))
