"""Linear models: logistic regression, ridge and the elastic net.

Regularization strengths are log-uniform over several decades, the commonly used practice (auto-sklearn,
FLAML, Bayesmark). Features are expected standardized (e.g. ``StandardScaler`` in a Pipeline): the ranges
assume unit-scale features, like every penalized linear model.
"""

from __future__ import annotations

from optuna.distributions import CategoricalDistribution, FloatDistribution
from sklearn.linear_model import ElasticNet, LogisticRegression, Ridge, RidgeClassifier

from ._space import Condition, SearchSpace

LOGISTIC_REGRESSION = SearchSpace(
    name="logistic_regression",
    estimators=(LogisticRegression,),
    params={
        "C": FloatDistribution(1e-4, 1e2, log=True),
        # Both solvers handle multiclass data; 'liblinear' does not (binary only since scikit-learn 1.8).
        "solver": CategoricalDistribution(["lbfgs", "saga"]),
    },
    # scikit-learn 1.8 deprecated `penalty`: `l1_ratio` alone picks L2 (0), L1 (1) or the elastic net
    # between. Only 'saga' accepts l1_ratio > 0, so 'lbfgs' keeps the default l1_ratio=0 (pure L2).
    conditional={"l1_ratio": Condition(FloatDistribution(0.0, 1.0), "solver", ("saga",))},
    fixed={"max_iter": 1000},
    doc="`max_iter=1000` (scikit-learn's 100 stops 'saga' and weakly regularized fits before they converge). "
    "`penalty` is never set: it is deprecated since scikit-learn 1.8.",
)

RIDGE = SearchSpace(
    name="ridge",
    estimators=(Ridge, RidgeClassifier),
    params={"alpha": FloatDistribution(1e-4, 1e4, log=True)},
    doc="No fixed settings; the solver stays scikit-learn's `'auto'`.",
)

ELASTIC_NET = SearchSpace(
    name="elastic_net",
    estimators=(ElasticNet,),
    params={
        "alpha": FloatDistribution(1e-5, 10.0, log=True),
        # scikit-learn warns that coordinate descent is unreliable for l1_ratio <= 0.01 (use Ridge there).
        "l1_ratio": FloatDistribution(0.01, 1.0),
    },
    fixed={"max_iter": 10_000},
    doc="`max_iter=10000`: coordinate descent with a small `alpha` needs many passes to converge.",
)
