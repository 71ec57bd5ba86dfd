"""scikit-learn's own estimator checks, run on both estimators with the bundled default artifacts.

These are what users get: default settings, the bundled "default-tabular" artifacts, with
cross-validated early stopping over up to 30 adaptation steps. No check is expected to fail,
``check_sample_weight_equivalence_on_dense_data`` included (weights are counts).
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from automl_meta.integrations.sklearn import MetaLearnedClassifier, MetaLearnedRegressor


@parametrize_with_checks([MetaLearnedClassifier(random_state=0), MetaLearnedRegressor(random_state=0)])
def test_sklearn_compatible_estimator_with_the_bundled_artifacts(estimator, check):
    check(estimator)
