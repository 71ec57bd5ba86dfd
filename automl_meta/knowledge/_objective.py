"""The objective every knowledge-base run measures: a scikit-learn Pipeline's cross-validated loss on a table.

The Pipeline is the one a user would write for a table (:func:`automl_meta.corpus.make_preprocessor`, then
the estimator of the space at the configuration). Classification scores accuracy, regression R^2 with the
target standardised (so that ``epsilon`` of SVR and ``alpha`` of the elastic net mean the same on every
dataset); the loss is one minus the mean score over 3 shuffled (stratified) folds with a fixed seed.

The support vector machines stop after :data:`SVM_MAX_ITER` iterations of LIBSVM's solver, and a fit
stopped there counts as failed (NaN): at ``C`` near the top of its range, a fit on a few hundred rows can
otherwise take hours (a 924-row table ran SVR at C = 2e4 for over 25 minutes per fold), and the model it
stops with is no model at all (R^2 of -1,000 and worse).
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
#: LIBSVM iterations after which an SVC or SVR fit counts as failed (about 10 s on 600 rows here).
SVM_MAX_ITER = 1_000_000


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
    space: str, task_type: str, params: Mapping[str, Any], X: pd.DataFrame, y: np.ndarray, *, seed: int = SEED
) -> float:
    """One minus the mean 3-fold score of the space's estimator at ``params`` on (X, y); NaN if a fit fails.

    ``seed`` shuffles the folds; the knowledge was built with the default.
    """
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    from ..corpus import make_preprocessor

    model = SPACES[space].apply(estimator_for(space, task_type), params)
    svm = isinstance(model, SVC | SVR)
    if svm:
        model.set_params(max_iter=SVM_MAX_ITER)
    pipeline = make_pipeline(make_preprocessor(), model)
    if task_type == "classification":
        cv: Any = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    else:
        cv = KFold(FOLDS, shuffle=True, random_state=seed)
        pipeline = TransformedTargetRegressor(regressor=pipeline, transformer=StandardScaler())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and ill-conditioning warnings are part of the landscape
        if svm:  # ... except an SVM stopped at its iteration cap: that fit fails (its fold scores NaN)
            warnings.filterwarnings("error", message="Solver terminated early", category=ConvergenceWarning)
        try:
            scores = cross_val_score(pipeline, X, y, cv=cv, error_score=np.nan)
        except ValueError as error:  # scikit-learn raises when every fold's fit failed
            if "fits failed" not in str(error):
                raise
            return math.nan
    score = float(np.mean(scores))
    return 1.0 - score if math.isfinite(score) else math.nan
