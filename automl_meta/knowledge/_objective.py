"""The objective every knowledge-base run measures: a scikit-learn Pipeline's cross-validated loss on a table.

The Pipeline is the one a user would write for a table (:func:`automl_meta.corpus.make_preprocessor`, then
the estimator of the space at the configuration). Classification scores accuracy, regression R^2 with the
target standardised (so that ``epsilon`` of SVR and ``alpha`` of the elastic net mean the same on every
dataset); the loss is one minus the mean score over 3 shuffled (stratified) folds with a fixed seed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..spaces import SPACES, SearchSpace

#: Estimator class of each space, per task type (the spaces that serve that type).
ESTIMATORS: dict[str, dict[str, str]] = {
    "classification": {
        "hist_gradient_boosting": "sklearn.ensemble.HistGradientBoostingClassifier",
        "random_forest": "sklearn.ensemble.RandomForestClassifier",
        "extra_trees": "sklearn.ensemble.ExtraTreesClassifier",
        "logistic_regression": "sklearn.linear_model.LogisticRegression",
        "ridge": "sklearn.linear_model.RidgeClassifier",
        "svc": "sklearn.svm.SVC",
        "k_neighbors": "sklearn.neighbors.KNeighborsClassifier",
        "mlp": "sklearn.neural_network.MLPClassifier",
    },
    "regression": {
        "hist_gradient_boosting": "sklearn.ensemble.HistGradientBoostingRegressor",
        "random_forest": "sklearn.ensemble.RandomForestRegressor",
        "extra_trees": "sklearn.ensemble.ExtraTreesRegressor",
        "ridge": "sklearn.linear_model.Ridge",
        "elastic_net": "sklearn.linear_model.ElasticNet",
        "svr": "sklearn.svm.SVR",
        "k_neighbors": "sklearn.neighbors.KNeighborsRegressor",
        "mlp": "sklearn.neural_network.MLPRegressor",
    },
}

FOLDS = 3
SEED = 0


def estimator_for(space: str, task_type: str) -> Any:
    """A new instance (scikit-learn's defaults) of the estimator that space ``space`` tunes for ``task_type``."""
    import importlib

    module, _, name = ESTIMATORS[task_type][space].rpartition(".")
    return getattr(importlib.import_module(module), name)()


def default_config(space: SearchSpace) -> dict[str, Any]:
    """scikit-learn's default configuration as seen in ``space``: each default, clipped into the range.

    A default outside a categorical parameter's choices takes the first choice. For a number: ``None``
    (scikit-learn's "all", e.g. ``max_samples``) takes the range's upper end, a tuple its first element
    (``hidden_layer_sizes=(100,)``), and a string (``"sqrt"``, ``"scale"``) the middle of the range (on the
    log scale for log ranges). Conditional parameters follow only when their condition holds.
    """
    config = {name: _inside(d, space.default(name)) for name, d in space.params.items()}
    for name, cond in space.conditional.items():
        if cond.holds(config):
            config[name] = _inside(cond.distribution, space.default(name))
    return config


def _inside(d: Any, value: Any) -> Any:
    from optuna.distributions import CategoricalDistribution

    if isinstance(d, CategoricalDistribution):
        return value if value in d.choices else d.choices[0]
    if value is None:
        value = d.high
    elif isinstance(value, tuple) and value:
        value = value[0]
    elif isinstance(value, str):
        value = math.sqrt(d.low * d.high) if d.log else (d.low + d.high) / 2
    clipped = min(max(value, d.low), d.high)
    return int(round(clipped)) if isinstance(d.low, int) and not isinstance(d.low, bool) else float(clipped)


def cross_validated_loss(
    space: str, task_type: str, params: Mapping[str, Any], X: pd.DataFrame, y: np.ndarray
) -> float:
    """One minus the mean 3-fold score of the space's estimator at ``params`` on (X, y); NaN if a fit fails."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..corpus import make_preprocessor

    model = SPACES[space].apply(estimator_for(space, task_type), params)
    pipeline = make_pipeline(make_preprocessor(), model)
    if task_type == "classification":
        cv: Any = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    else:
        cv = KFold(FOLDS, shuffle=True, random_state=SEED)
        pipeline = TransformedTargetRegressor(regressor=pipeline, transformer=StandardScaler())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and ill-conditioning warnings are part of the landscape
        scores = cross_val_score(pipeline, X, y, cv=cv, error_score=np.nan)
    score = float(np.mean(scores))
    return 1.0 - score if math.isfinite(score) else math.nan
