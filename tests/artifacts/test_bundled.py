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
    # Meta-trained on the synthetic prior together with real tables.
    family = artifact.task_family
    assert family["family"] == "MixtureTasks"
    assert [part["family"] for part in family["components"]] == ["SyntheticTabular", "CorpusTabular"]


@pytest.mark.parametrize("task_type", ["classification", "regression"])
def test_bundled_tabular_artifacts_never_trained_on_an_evaluation_table(task_type):
    from automl_meta.corpus import load_corpus, split_of

    family = am.load(f"default-tabular-{task_type}").task_family
    (tables,) = [part["tasks"] for part in family["components"] if part["family"] == "CorpusTabular"]
    assert len(tables) >= 50 and len(set(tables)) == len(tables)
    assert all(split_of(name) == "meta-train" for name in tables)
    held_out = {t.name for t in load_corpus("evaluation", max_rows=200, task_type=task_type)}
    assert held_out and not held_out & set(tables)


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


def test_default_l2o_is_small_and_trains_an_unseen_network_better_than_adam_at_its_default():
    import torch
    from torch import nn

    path = am.artifacts.registry.resolve("default-l2o")
    assert path.stat().st_size < 2_000_000
    artifact = am.load("default-l2o")
    assert isinstance(artifact.learner, am.learners.UpdateRule)
    assert artifact.training["trainer"] == "unrolled" and artifact.task_family["family"] == "OptimizeeTasks"

    X, y = load_breast_cancer(return_X_y=True)
    X = torch.tensor((X - X.mean(0)) / X.std(0), dtype=torch.float32)
    y = torch.tensor(y)
    final = {}
    for name in ("learned", "adam"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(30, 96), nn.Tanh(), nn.Linear(96, 96), nn.Tanh(), nn.Linear(96, 2))
        opt = (
            am.optim.LearnedOptimizer(model.parameters())
            if name == "learned"
            else torch.optim.Adam(model.parameters(), lr=1e-3)
        )
        for _ in range(150):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(X), y)
            loss.backward()
            opt.step()
        final[name] = loss.item()
    assert np.isfinite(final["learned"]) and final["learned"] < final["adam"]
