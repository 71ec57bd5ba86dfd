"""Tree ensembles: histogram gradient boosting, random forests and extra trees.

Ranges are the commonly used ones (auto-sklearn's gradient boosting and forest spaces, FLAML's defaults):
log-scaled where a parameter acts multiplicatively (learning rate, leaf counts, regularization).
"""

from __future__ import annotations

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

from ._space import Condition, SearchSpace

HIST_GRADIENT_BOOSTING = SearchSpace(
    name="hist_gradient_boosting",
    estimators=(HistGradientBoostingClassifier, HistGradientBoostingRegressor),
    params={
        "learning_rate": FloatDistribution(0.01, 1.0, log=True),
        # Tuned together with the learning rate (the two trade off); early stopping is off so that the
        # number of iterations means the same on every dataset.
        "max_iter": IntDistribution(16, 512, log=True),
        "max_leaf_nodes": IntDistribution(3, 2047, log=True),
        "min_samples_leaf": IntDistribution(1, 200, log=True),
        "l2_regularization": FloatDistribution(1e-10, 1.0, log=True),
        "max_features": FloatDistribution(0.1, 1.0),
    },
    fixed={"early_stopping": False},
    doc="`early_stopping=False`: `max_iter` is tuned and should mean the same number of trees on small and "
    "large data (scikit-learn's `'auto'` switches early stopping on above 10,000 samples).",
)


def _forest(name: str, classes: tuple[type, ...], default_bootstrap: str) -> SearchSpace:
    return SearchSpace(
        name=name,
        estimators=classes,
        params={
            "max_features": FloatDistribution(0.1, 1.0),
            "min_samples_split": IntDistribution(2, 20),
            "min_samples_leaf": IntDistribution(1, 20),
            "bootstrap": CategoricalDistribution([True, False]),
        },
        # scikit-learn refuses max_samples without bootstrap: it exists only on the bootstrap branch.
        conditional={"max_samples": Condition(FloatDistribution(0.1, 1.0), "bootstrap", (True,))},
        doc=f"No fixed settings. `n_estimators` is left as the user sets it (scikit-learn's default 100): "
        f"more trees rarely hurt, they only cost time. Criterion is not tuned, so one space serves "
        f"classifier and regressor; scikit-learn's default `bootstrap` here is {default_bootstrap}.",
    )


RANDOM_FOREST = _forest("random_forest", (RandomForestClassifier, RandomForestRegressor), "True")
EXTRA_TREES = _forest("extra_trees", (ExtraTreesClassifier, ExtraTreesRegressor), "False")
