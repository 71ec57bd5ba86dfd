"""scikit-learn's own estimator checks, run on both estimators."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

import automl_meta as am
from automl_meta.integrations.sklearn import MetaLearnedClassifier, MetaLearnedRegressor


def _artifact(task_type: str) -> am.MetaArtifact:
    # A small universal artifact, meta-trained briefly: the checks test the contract, not accuracy.
    tasks = am.tasks.SyntheticTabular(task_type, n_features=(1, 8), n_classes=(2, 5), shots=(8, 32))
    outputs = 5 if task_type == "classification" else 5
    learner = am.learners.MetaSGD(
        am.models.TabularNet(hidden=32, depth=1, max_features=64, max_outputs=outputs),
        inner_steps=2,
        lr_granularity="tensor",
    )
    return am.MetaTrainer(
        learner, tasks, meta_batch_size=8, iterations=100, n_validation_tasks=0, verbose=0, seed=0
    ).fit()


CLASSIFIER = MetaLearnedClassifier(_artifact("classification"), random_state=0)
REGRESSOR = MetaLearnedRegressor(_artifact("regression"), random_state=0)


@parametrize_with_checks([CLASSIFIER, REGRESSOR])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
