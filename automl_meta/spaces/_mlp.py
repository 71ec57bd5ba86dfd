"""scikit-learn's multi-layer perceptron (classifier and regressor).

Ranges follow auto-sklearn's MLP space where scikit-learn's estimator allows it: width log-uniform over
16 .. 256 units, ``alpha`` log-uniform over 1e-7 .. 0.1, initial learning rate log-uniform over 1e-4 .. 0.1.
"""

from __future__ import annotations

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from sklearn.neural_network import MLPClassifier, MLPRegressor

from ._space import Condition, SearchSpace

_STOCHASTIC = ("adam", "sgd")

MLP = SearchSpace(
    name="mlp",
    estimators=(MLPClassifier, MLPRegressor),
    params={
        # An int is one hidden layer of that width: Optuna's values are plain scalars, never tuples, so
        # depth is not tuned (a tuple-valued parameter could not meet past runs by name and value).
        "hidden_layer_sizes": IntDistribution(16, 256, log=True),
        "activation": CategoricalDistribution(["relu", "tanh"]),
        "alpha": FloatDistribution(1e-7, 1e-1, log=True),
        # 'lbfgs' is scikit-learn's advice for small datasets, which most tabular tasks are.
        "solver": CategoricalDistribution(["adam", "sgd", "lbfgs"]),
    },
    conditional={
        "learning_rate_init": Condition(FloatDistribution(1e-4, 1e-1, log=True), "solver", _STOCHASTIC),
        "momentum": Condition(FloatDistribution(0.0, 0.99), "solver", ("sgd",)),
        "nesterovs_momentum": Condition(CategoricalDistribution([True, False]), "solver", ("sgd",)),
        "learning_rate": Condition(CategoricalDistribution(["constant", "adaptive"]), "solver", ("sgd",)),
    },
    fixed={"max_iter": 1000, "early_stopping": True},
    doc="`early_stopping=True` for 'adam' and 'sgd': training stops when the score on a 10% validation split "
    "stops improving, so `max_iter=1000` (epochs; iterations for 'lbfgs') is only a bound. Needs at least "
    "20 rows (and, for classifiers, a validation split holding every class). `learning_rate='invscaling'` "
    "is left out: scikit-learn decays it per sample, which stalls training within a few epochs.",
)
