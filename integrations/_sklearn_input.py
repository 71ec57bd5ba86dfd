"""Input checks and feature scaling for the scikit-learn estimators (private).

The overflow-safe scaling helpers live in the core (``automl_meta.artifacts._scaling``), shared with
:class:`~automl_meta.artifacts.preprocessing.Preprocessing`, so that the estimators and
:meth:`~automl_meta.MetaArtifact.adapt` prepare a family's data bit for bit alike.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from automl_meta.artifacts import MetaArtifact
from automl_meta.artifacts._scaling import _mean_scale
from automl_meta.artifacts.preprocessing import Preprocessing
from automl_meta.exceptions import ArtifactError
from automl_meta.learners import UpdateRule


def _feature_scaling(prep: Preprocessing, X: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feature mean and scale for a fit on ``X`` (weighted, so that a weight of 2 is a repeated row)."""
    if prep.scales_features:  # a family artifact: scale as in meta-training
        return np.asarray(prep.feature_mean), np.asarray(prep.feature_scale)
    return _mean_scale(X, weight)


def _check_serves(
    artifact: MetaArtifact, task_type: str, n_features: int, n_outputs: int, feature_names_in: Any
) -> None:
    """Refuse data the artifact's model cannot serve (a family's width, outputs or features), saying why.

    A universal artifact serves any width and any number of outputs: wider tables through members
    that see subsets of the features, more classes through an output code, more targets in chunks.
    """
    model: Any = artifact.learner.model  # a tabular backbone: in_features, out_features, flexible_widths
    prep = artifact.preprocessing
    family = prep.shared_features
    flexible = getattr(model, "flexible_widths", False) and not family
    what = "classes" if task_type == "classification" else "targets"
    fixed = None if prep.feature_names is None else list(prep.feature_names)
    if fixed is not None and list(fixed if feature_names_in is None else feature_names_in) != fixed:
        raise ValueError(
            f"This artifact was meta-trained on a family of datasets with the features {fixed}; "
            f"it cannot serve data with the features {list(feature_names_in)}. Use a "
            "universal artifact such as 'default-tabular', or meta-train one on this family."
        )
    if family and n_features != model.in_features:
        raise ValueError(
            f"This artifact was meta-trained on a family of datasets with {model.in_features} "
            f"features; X has {n_features}. Family artifacts serve only their family's features."
        )
    if flexible:
        return
    if n_features != model.in_features:
        raise ValueError(
            f"The artifact's model takes exactly {model.in_features} features; X has {n_features}. This artifact "
            f"was meta-trained for data of another width (task family {artifact.family_name!r})."
        )
    if n_outputs > model.out_features:
        raise ValueError(
            f"The artifact's model serves at most {model.out_features} {what}; y has {n_outputs}. Only a "
            "universal artifact such as 'default-tabular' serves any number."
        )


def _check_tabular_artifact(artifact: MetaArtifact, source: object, estimator: str, task_type: str) -> None:
    """Refuse, with what to use instead, an artifact that was not meta-trained for ``task_type`` tasks."""
    learner = artifact.learner
    kind = getattr(learner, "task_type", None)
    if kind == task_type:
        return
    what = f"The artifact {str(source)!r}" if isinstance(source, (str, os.PathLike)) else "The artifact"
    if isinstance(learner, UpdateRule):
        arg = repr(str(source)) if isinstance(source, (str, os.PathLike)) else "..."
        raise ArtifactError(
            f"{what} is a learned optimizer (a {learner.name!r} update rule), not a meta-trained "
            f"model, so {estimator} cannot fit data with it. Use it to train a PyTorch model with "
            f"automl_meta.optim.LearnedOptimizer(model.parameters(), artifact={arg}), or give {estimator} a "
            f"{task_type} artifact such as 'default-tabular'."
        )
    family = artifact.family_name
    estimators: dict[str | None, str] = {
        "classification": "MetaLearnedClassifier",
        "regression": "MetaLearnedRegressor",
    }
    other = estimators.get(kind)
    instead = f"use {other} with this one, or " if other else "use "
    raise ArtifactError(
        f"{what} was meta-trained for {kind} tasks (task family {family!r}); {estimator} needs a "
        f"{task_type} artifact ({instead}an artifact such as 'default-tabular')."
    )
