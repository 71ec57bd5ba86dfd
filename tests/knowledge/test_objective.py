"""The knowledge's objective: a cross-validated loss, NaN for fits that fail or for SVMs stopped at their cap."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from automl_meta.knowledge import _objective
from automl_meta.knowledge._objective import cross_validated_loss


def _table(n: int = 120) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.standard_normal((n, 3)), columns=["a", "b", "c"])
    return X, X["a"].to_numpy() + 0.1 * rng.standard_normal(n)


def test_an_svm_stopped_at_its_iteration_cap_counts_as_failed(monkeypatch):
    X, y = _table()
    config = {"C": 100.0, "gamma": 1.0, "epsilon": 0.001}
    converged = cross_validated_loss("svr", "regression", config, X, y)
    assert math.isfinite(converged) and converged < 0.5
    monkeypatch.setattr(_objective, "SVM_MAX_ITER", 5)  # far too few for any fit here
    assert math.isnan(cross_validated_loss("svr", "regression", config, X, y))
    labels = (y > 0).astype(int)
    assert math.isnan(cross_validated_loss("svc", "classification", {"C": 100.0, "gamma": 1.0}, X, labels))
    # Other estimators' convergence warnings are part of the landscape, not failures.
    mlp = {"hidden_layer_sizes": 64, "solver": "lbfgs", "alpha": 1e-7, "activation": "tanh"}  # lbfgs stops at 200
    with pytest.warns(ConvergenceWarning):
        _mlp_fit(mlp, X, y)
    assert math.isfinite(cross_validated_loss("mlp", "regression", mlp, X, y))


def _mlp_fit(config: dict, X: pd.DataFrame, y: np.ndarray) -> None:
    from automl_meta.spaces import SPACES

    # Seeded: whether lbfgs stops short depends on the initial weights (a few seeds converge in time).
    SPACES["mlp"].apply(_objective.estimator_for("mlp", "regression"), config).set_params(random_state=0).fit(X, y)
