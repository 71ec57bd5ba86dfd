"""k-nearest neighbours (classifier and regressor), with auto-sklearn's commonly used ranges."""

from __future__ import annotations

from optuna.distributions import CategoricalDistribution, IntDistribution
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from ._space import SearchSpace

K_NEIGHBORS = SearchSpace(
    name="k_neighbors",
    estimators=(KNeighborsClassifier, KNeighborsRegressor),
    params={
        "n_neighbors": IntDistribution(1, 100, log=True),
        "weights": CategoricalDistribution(["uniform", "distance"]),
        # The Minkowski power of scikit-learn's default metric: 1 is Manhattan, 2 Euclidean distance.
        "p": CategoricalDistribution([1, 2]),
    },
    doc="No fixed settings. `n_neighbors` must not exceed the number of training samples: on data with "
    "fewer than 100 rows narrow its range.",
)
