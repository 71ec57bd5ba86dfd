"""The estimators inside scikit-learn's tools, family artifacts, and clear errors."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris, load_wine
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import automl_meta as am
from automl_meta.integrations.sklearn import MetaLearnedClassifier, MetaLearnedRegressor


@pytest.fixture(scope="module")
def clf_artifact():
    tasks = am.tasks.SyntheticTabular("classification", n_features=(2, 13), n_classes=(2, 4), shots=(8, 48))
    learner = am.learners.MetaSGD(
        am.models.TabularNet(hidden=32, depth=1, max_features=16, max_outputs=4), inner_steps=2, lr_granularity="tensor"
    )
    return am.MetaTrainer(learner, tasks, meta_batch_size=8, iterations=150, n_validation_tasks=0, verbose=0).fit()


@pytest.fixture(scope="module")
def reg_artifact():
    tasks = am.tasks.SyntheticTabular("regression", n_features=(2, 8), shots=(8, 48))
    learner = am.learners.MetaSGD(
        am.models.TabularNet(hidden=32, depth=1, max_features=16, max_outputs=2), inner_steps=2, lr_granularity="tensor"
    )
    return am.MetaTrainer(learner, tasks, meta_batch_size=8, iterations=100, n_validation_tasks=0, verbose=0).fit()


def test_pipeline_cross_validation_and_grid_search(clf_artifact):
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), MetaLearnedClassifier(clf_artifact, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.8  # iris is easy; a learned start that did not work would be near 1/3
    grid = GridSearchCV(pipe, {"metalearnedclassifier__adapt_steps": [0, 3]}, cv=3).fit(X, y)
    assert grid.best_params_["metalearnedclassifier__adapt_steps"] in (0, 3)


def test_column_transformer_with_a_dataframe(clf_artifact):
    r = np.random.default_rng(0)
    df = pd.DataFrame({"size": r.normal(size=60), "colour": r.choice(["red", "blue"], 60)})
    y = (df["size"] > 0).astype(int)
    ct = ColumnTransformer([("num", StandardScaler(), ["size"]), ("cat", OneHotEncoder(), ["colour"])])
    model = make_pipeline(ct, MetaLearnedClassifier(clf_artifact, random_state=0)).fit(df, y)
    assert model.score(df, y) > 0.8
    est = MetaLearnedClassifier(clf_artifact, random_state=0).fit(df[["size"]], y)
    assert list(est.feature_names_in_) == ["size"] and est.n_features_in_ == 1


def test_clone_refit_and_joblib_round_trip(clf_artifact, tmp_path):
    X, y = load_wine(return_X_y=True)
    est = MetaLearnedClassifier(clf_artifact, random_state=3).fit(X, y)
    again = clone(est).fit(X, y)
    np.testing.assert_array_equal(est.predict_proba(X), again.predict_proba(X))  # fixed random_state: identical
    joblib.dump(est, tmp_path / "est.joblib")
    loaded = joblib.load(tmp_path / "est.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


def test_partial_fit_and_warm_start_continue_adapting(reg_artifact):
    r = np.random.default_rng(0)
    X = r.normal(size=(60, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.05 * r.normal(size=60)
    est = MetaLearnedRegressor(reg_artifact, adapt_steps=1, random_state=0).fit(X, y)
    first = est.score(X, y)
    for _ in range(5):
        est.partial_fit(X, y)
    assert est.score(X, y) > first
    warm = MetaLearnedRegressor(reg_artifact, adapt_steps=1, random_state=0, warm_start=True)
    warm.fit(X, y)
    for _ in range(5):
        warm.fit(X, y)
    assert warm.score(X, y) == pytest.approx(est.score(X, y))


def test_multi_output_regression(reg_artifact):
    r = np.random.default_rng(1)
    X = r.normal(size=(50, 3))
    Y = np.c_[X[:, 0] * 10 + 100, -X[:, 1]]
    est = MetaLearnedRegressor(reg_artifact, random_state=0).fit(X, Y)
    pred = est.predict(X)
    assert pred.shape == (50, 2)
    assert abs(pred[:, 0].mean() - 100) < 2  # targets are standardised and mapped back


def family_table(n_stores=16, rows=40, seed=0):
    r = np.random.default_rng(seed)
    parts = []
    for s in range(n_stores):
        price, promo = r.normal(size=rows), r.integers(0, 2, rows)
        sales = 3 * promo - 2 * price + 0.5 * (s % 4) + r.normal(scale=0.2, size=rows) + 50
        parts.append(pd.DataFrame({"store": s, "price": price, "promo": promo, "sales": sales}))
    return pd.concat(parts, ignore_index=True)


def test_family_artifact_serves_its_family_and_refuses_other_features(tmp_path):
    tasks = am.tasks.from_groups(family_table(), group="store", target="sales", shots=10, query_shots=20)
    artifact = am.meta_fit(tasks, iterations=150, verbose=0, n_validation_tasks=0, checkpoint_dir=tmp_path)
    assert artifact.task_family["feature_names"] == ["price", "promo"]
    # The copy left in checkpoint_dir is the same family artifact, scaling included.
    assert am.load(tmp_path / "artifact.ameta").task_family == artifact.task_family
    new = family_table(n_stores=1, seed=9)
    est = MetaLearnedRegressor(artifact).fit(new[["price", "promo"]][:10], new["sales"][:10])
    assert est.score(new[["price", "promo"]][10:], new["sales"][10:]) > 0.5
    with pytest.raises(ValueError, match="features \\['price', 'promo'\\].*cannot serve data with the features"):
        MetaLearnedRegressor(artifact).fit(new[["promo", "price"]], new["sales"])
    with pytest.raises(ValueError, match="family of datasets with 2 features; X has 3"):
        MetaLearnedRegressor(artifact).fit(np.zeros((5, 3)), np.zeros(5))


@pytest.mark.parametrize(
    "make, fit_args, message",
    [
        (lambda a: MetaLearnedClassifier(a), (np.array([[0.0, np.inf]] * 4), [0, 1, 0, 1]), "infinity"),
        (lambda a: MetaLearnedClassifier(a), (np.zeros((4, 2)), [1, 1, 1, 1]), "one class only"),
        (lambda a: MetaLearnedClassifier(a), (np.zeros((0, 2)), []), "0 sample"),
        (lambda a: MetaLearnedClassifier(a, adapt_steps=-1), (np.zeros((4, 2)), [0, 1, 0, 1]), "adapt_steps"),
        (lambda a: MetaLearnedClassifier(a, n_ensemble=0), (np.zeros((4, 2)), [0, 1, 0, 1]), "n_ensemble"),
        (lambda a: MetaLearnedRegressor(a), (np.zeros((4, 2)), [0.0, 1, 2, 3]), "needs a regression artifact"),
        (
            lambda a: MetaLearnedClassifier("no-such-artifact"),
            (np.zeros((4, 2)), [0, 1, 0, 1]),
            "No artifact file at 'no-such-artifact'",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(clf_artifact, make, fit_args, message):
    with pytest.raises(ValueError, match=message):
        make(clf_artifact).fit(*fit_args)


def test_wrong_feature_count_at_predict(clf_artifact):
    est = MetaLearnedClassifier(clf_artifact).fit(np.random.default_rng(0).normal(size=(10, 3)), [0, 1] * 5)
    with pytest.raises(ValueError, match="X has 2 features, but MetaLearnedClassifier is expecting 3"):
        est.predict(np.zeros((2, 2)))


@pytest.fixture(scope="module")
def cv_artifact():
    tasks = am.tasks.SyntheticTabular("classification", n_features=(2, 8), n_classes=(2, 3), shots=(8, 32))
    learner = am.learners.MetaSGD(
        am.models.TabularNet(hidden=16, depth=1, max_features=8, max_outputs=3), inner_steps=2, lr_granularity="tensor"
    )
    return am.MetaTrainer(
        learner,
        tasks,
        meta_batch_size=4,
        iterations=30,
        n_validation_tasks=8,
        eval_every=30,
        adapt_steps_candidates=(1, 2, 4, 8),
        verbose=0,
    ).fit()


def test_adaptation_steps_are_chosen_by_cross_validation(cv_artifact):
    X, y = load_iris(return_X_y=True)
    X, y = X[::3], y[::3]
    auto = MetaLearnedClassifier(cv_artifact, random_state=0).fit(X, y)
    losses = auto.cv_loss_by_adapt_steps_
    assert sorted(losses) == [0, 1, 2, 4, 8] and all(np.isfinite(v) for v in losses.values())
    assert auto.adapt_steps_ == min(losses, key=lambda s: (losses[s], s))
    fixed = MetaLearnedClassifier(cv_artifact, adapt_steps=auto.adapt_steps_, random_state=0).fit(X, y)
    assert fixed.adapt_steps_ == auto.adapt_steps_ and not hasattr(fixed, "cv_loss_by_adapt_steps_")
    # Same model up to float rounding: the cross-validated fit runs the ensemble in a wider batch.
    np.testing.assert_allclose(fixed.predict_proba(X), auto.predict_proba(X), rtol=1e-5, atol=1e-7)


def test_cross_validated_steps_continue_exactly_as_fresh_fits(cv_artifact):
    # Held-out losses at 8 steps reached via 2 -> 4 -> 8 and via 2 -> 8 must agree: continuing
    # adaptation from an earlier candidate is the same computation as adapting afresh.
    X, y = load_wine(return_X_y=True)
    X, y = X[::4, :8], y[::4]
    sparse = am.MetaArtifact(
        cv_artifact.learner,
        task_family=cv_artifact.task_family,
        training=cv_artifact.training,
        metrics={**cv_artifact.metrics, "val_loss_by_adapt_steps": {"8": 0.0}},
    )
    dense = MetaLearnedClassifier(cv_artifact, random_state=1).fit(X, y).cv_loss_by_adapt_steps_
    few = MetaLearnedClassifier(sparse, random_state=1).fit(X, y).cv_loss_by_adapt_steps_
    assert sorted(few) == sorted({0, cv_artifact.training["adapt_steps"], 8})
    for steps, loss in few.items():
        assert loss == pytest.approx(dense[steps], rel=1e-10)


def test_too_few_rows_to_split_use_the_learned_default(cv_artifact):
    X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    est = MetaLearnedClassifier(cv_artifact, random_state=0).fit(X, [0, 1, 1])
    assert est.adapt_steps_ == cv_artifact.training["adapt_steps"]
    assert not hasattr(est, "cv_loss_by_adapt_steps_")


def test_the_search_for_the_step_count_stops_once_the_held_out_loss_stops_improving():
    # Labels independent of X: adapting only fits noise, so the held-out loss soon stops improving
    # and the bundled classifier must not be carried through all of its candidate step counts.
    from automl_meta.integrations._sklearn_cv import _stalled

    r = np.random.default_rng(0)
    X, y = r.normal(size=(90, 5)), r.integers(0, 3, 90)
    clf = MetaLearnedClassifier(random_state=0).fit(X, y)
    candidates = clf._step_candidates()
    tried = list(clf.cv_loss_by_adapt_steps_)
    losses = list(clf.cv_loss_by_adapt_steps_.values())
    assert tried == candidates[: len(tried)] and len(tried) < len(candidates)
    assert _stalled(losses) and not any(_stalled(losses[:i]) for i in range(1, len(losses)))
    assert clf.adapt_steps_ == min(clf.cv_loss_by_adapt_steps_, key=lambda s: (clf.cv_loss_by_adapt_steps_[s], s))
    # The fit is the one the chosen step count gives without a search (with the same weight on the prior).
    fixed = MetaLearnedClassifier(adapt_steps=clf.adapt_steps_, random_state=0).fit(X, y)
    assert fixed.prior_weight_ == 0.0
    fixed.prior_weight_ = clf.prior_weight_
    np.testing.assert_allclose(fixed.predict_proba(X), clf.predict_proba(X), rtol=1e-5, atol=1e-7)


def test_probabilities_shrink_toward_the_class_frequencies_only_where_the_folds_find_little_signal():
    weights, gaps = [], []
    for seed in range(3):
        r = np.random.default_rng(seed)
        X = r.normal(size=(40, 100))  # more columns than rows, labels independent of X: 70% in class 1
        noise = (r.random(40) < 0.7).astype(int)
        signal = (X[:, 0] + X[:, 1] > 0).astype(int)
        lost = MetaLearnedClassifier(random_state=0).fit(X, noise)
        clean = MetaLearnedClassifier(random_state=0).fit(X[:, :4], signal)
        np.testing.assert_allclose(lost.class_prior_, np.bincount(noise, minlength=2) / 40)
        assert clean.prior_weight_ <= 0.1
        X_new = r.normal(size=(300, 100))
        np.testing.assert_allclose(lost.predict_proba(X_new).sum(1), 1.0)
        shrunk = np.abs(lost.predict_proba(X_new) - lost.class_prior_).mean()
        weights.append(lost.prior_weight_)
        lost.prior_weight_ = 0.0
        gaps.append((shrunk, np.abs(lost.predict_proba(X_new) - lost.class_prior_).mean()))
    # On noise most of the weight goes to the frequencies, and the probabilities move toward them.
    assert np.mean(weights) >= 0.5
    assert all(shrunk <= unshrunk for shrunk, unshrunk in gaps) and any(s < u for s, u in gaps)


@pytest.mark.parametrize("make", [am.learners.MetaSGD, am.learners.IMAML], ids=["base loop", "own loop"])
def test_each_candidate_of_the_step_path_is_the_fresh_fit_of_that_many_steps(make):
    import torch

    from automl_meta.integrations._sklearn_cv import _adapt_path

    learner = make(am.models.TabularNet(hidden=8, depth=1, max_features=4, max_outputs=3), inner_steps=2)
    learner.setup("classification", 4, 3, torch.Generator().manual_seed(0))
    learner.to(torch.float64)
    batch = am.tasks.SyntheticTabular("classification", n_features=4, n_classes=3, shots=12).sample(3, rng=0)
    batch = batch.to(torch.float64)
    candidates = [0, 1, 2, 4, 7]
    for steps, params in _adapt_path(learner, batch, candidates):
        fresh = learner.adapt_batch(batch, steps)
        for name in fresh:
            torch.testing.assert_close(params[name], fresh[name], rtol=1e-9, atol=1e-12)
