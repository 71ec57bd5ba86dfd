"""The bundled universal artifacts load, verify and serve the estimators' default."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import train_test_split

import automl_meta as am
from automl_meta.integrations.sklearn import MetaLearnedClassifier, MetaLearnedRegressor


@pytest.mark.parametrize("name", ["default-tabular-classification", "default-tabular-regression"])
def test_bundled_artifact_loads_and_is_small(name):
    assert name in am.artifacts.bundled()
    artifact = am.load(name)  # verifies the sha256 of its tensors
    path = am.artifacts.registry.resolve(name)
    assert path.stat().st_size < 5_000_000
    assert artifact.training["adapt_steps"] >= 1
    assert artifact.task_family["family"] == "SyntheticTabular"


def test_default_classifier_beats_the_majority_class_clearly():
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, train_size=32, random_state=0, stratify=y)
    clf = MetaLearnedClassifier(random_state=0).fit(Xtr, ytr)
    assert clf.artifact_.learner.task_type == "classification"
    majority = max(np.mean(yte == c) for c in np.unique(yte))
    assert clf.score(Xte, yte) > majority + 0.2


def test_default_regressor_explains_variance():
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, train_size=64, random_state=0)
    reg = MetaLearnedRegressor(random_state=0).fit(Xtr, ytr)
    assert reg.score(Xte, yte) > 0.2  # an unadapted constant scores about 0
