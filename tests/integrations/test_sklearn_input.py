"""The estimators on extreme but valid input, and the input they refuse (with what to do instead)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

import automl_meta as am
from automl_meta.integrations.sklearn import MetaLearnedClassifier, MetaLearnedRegressor


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X[:60], y[:60] / 400  # targets of order 1


@pytest.mark.parametrize("factor", [1e200, 1e300, 1.5e308])
def test_huge_targets_are_fitted_like_targets_of_order_one(diabetes, factor):
    X, y = diabetes
    ordinary = MetaLearnedRegressor(random_state=0).fit(X, y).predict(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        huge = MetaLearnedRegressor(random_state=0).fit(X, y * factor).predict(X)
    assert np.all(np.isfinite(huge))
    np.testing.assert_allclose(huge / factor, ordinary, rtol=1e-9)


def test_huge_features_are_scaled_like_features_of_order_one(diabetes):
    X, y = diabetes
    ordinary = MetaLearnedRegressor(random_state=0).fit(X, y).predict(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        huge = MetaLearnedRegressor(random_state=0).fit(X * 1e200, y).predict(X * 1e200)
    np.testing.assert_allclose(huge, ordinary, rtol=1e-9)


def test_predictions_beyond_the_float64_range_are_refused_clearly():
    X = np.linspace(-1, 1, 40)[:, None]
    est = MetaLearnedRegressor(random_state=0).fit(X, np.where(X[:, 0] > 0, 1.79e308, -1.79e308))
    with pytest.raises(ValueError, match="exceed the float64 range"):
        est.predict(np.array([[-3.0], [3.0]]))
    small = MetaLearnedRegressor(adapt_steps=1, random_state=0).fit(X, X[:, 0] * 1e-3)
    with pytest.raises(ValueError, match="too far from the targets of the first fit"):
        small.partial_fit(X, np.full(40, 1.7e308))


@pytest.mark.parametrize("Estimator, y", [(MetaLearnedClassifier, [0, 1] * 5), (MetaLearnedRegressor, range(10))])
def test_negative_sample_weight_is_refused_as_scikit_learn_does(Estimator, y):
    X = np.random.default_rng(0).normal(size=(10, 2))
    weight = np.ones(10)
    weight[3] = -0.5
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        Estimator(random_state=0).fit(X, list(y), sample_weight=weight)
    with pytest.raises(ValueError, match="at least one non-zero number"):
        Estimator(random_state=0).fit(X, list(y), sample_weight=np.zeros(10))


@pytest.mark.parametrize("Estimator", [MetaLearnedClassifier, MetaLearnedRegressor])
def test_a_learned_optimizer_artifact_is_refused_with_what_to_use_instead(Estimator):
    X, y = np.random.default_rng(0).normal(size=(10, 2)), [0, 1] * 5
    with pytest.raises(am.exceptions.ArtifactError, match=r"'default-l2o' is a learned optimizer") as info:
        Estimator(artifact="default-l2o").fit(X, y)
    assert "automl_meta.optim.LearnedOptimizer(model.parameters(), artifact='default-l2o')" in str(info.value)
    assert "None tasks" not in str(info.value)
    lstm = am.MetaArtifact(am.learners.LSTMOptimizer(), task_family={"family": "OptimizeeTasks"})
    with pytest.raises(ValueError, match="is a learned optimizer .*'lstm.*LearnedOptimizer"):
        Estimator(artifact=lstm).fit(X, y)


def test_an_artifact_of_the_other_task_type_names_the_estimator_to_use():
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match="meta-trained for classification tasks .*use MetaLearnedClassifier"):
        MetaLearnedRegressor("default-tabular-classification").fit(X, np.arange(10.0))
    with pytest.raises(ValueError, match="meta-trained for regression tasks .*use MetaLearnedRegressor"):
        MetaLearnedClassifier("default-tabular-regression").fit(X, [0, 1] * 5)
