"""MetaLearnedClassifier/Regressor on tables above the row threshold: subsampled steps, the head on all rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import automl_meta as am
from automl_meta.integrations import _sklearn_rows as rows
from automl_meta.integrations.sklearn import MetaLearnedClassifier, MetaLearnedRegressor


@pytest.fixture
def small_threshold(monkeypatch):
    """The large-table path from 256 rows (2 support sets of 128) instead of 512, so tests stay quick."""
    monkeypatch.setattr(rows, "_ROWS_PER_SUPPORT", 2)
    return 256


def _linear_rule(n, n_features=10, seed=0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, n_features))
    return X, (X[:, :3] @ np.array([1.5, -1.0, 0.5]) > 0).astype(np.int64)


def test_the_threshold_is_4_of_the_bundled_artifacts_meta_trained_support_sets():
    artifact = am.load("default-tabular-classification")
    assert rows._support_size(artifact) == 128  # shots=(8, 128) in the manifest's task family
    assert rows._row_threshold(artifact) == 512


def test_a_linear_rule_on_30000_rows_is_learned_with_bounded_batches(monkeypatch):
    seen = {"adapted": [], "members": []}
    steps_from, members = rows._steps_from, MetaLearnedClassifier._members

    def spy_steps(learner, supports, params, done, steps):
        seen["adapted"].extend(s["x"].shape[1] for s in supports[:steps])  # the mini-batch of each step
        return steps_from(learner, supports, params, done, steps)

    def spy_members(self, X, tasks=None):
        seen["members"].append(len(X))
        return members(self, X, tasks)

    monkeypatch.setattr(rows, "_steps_from", spy_steps)
    monkeypatch.setattr(MetaLearnedClassifier, "_members", spy_members)
    X, y = _linear_rule(32_000)
    clf = MetaLearnedClassifier(random_state=0).fit(X[:30_000], y[:30_000])
    assert clf.score(X[30_000:], y[30_000:]) > 0.95
    # Every gradient step saw one mini-batch of 256 rows, and no array of the model's input held more than 4,096.
    assert seen["adapted"] and set(seen["adapted"]) == {256}
    assert max(seen["members"]) <= rows._CHUNK_ROWS
    assert set(clf.cv_loss_by_adapt_steps_) <= {0, *clf.artifact_.validated_adapt_steps}
    assert clf.params_["head.weight"].dtype == torch.float32  # the large-table path runs in float32


def test_the_chunked_head_is_the_closed_form_head_of_all_rows(monkeypatch):
    monkeypatch.setattr(rows, "_CHUNK_ROWS", 37)  # many chunks, the last one short
    X, y = _linear_rule(200, n_features=4)
    clf = MetaLearnedClassifier(random_state=0, adapt_steps=0).fit(X, y)
    weight = np.random.default_rng(1).integers(0, 4, len(X)).astype(np.float64)
    start = rows._head_on_all_rows(clf, X, y, weight)
    model, init = clf._learner.model, clf._learner.init_params()
    support = clf._batch(X, y, weight[None]).support()
    for m in range(len(clf.member_features_)):
        expected = model.initialize_from_support(init, {k: v[m] for k, v in support.items()})
        for name in ("head.weight", "head.bias"):
            torch.testing.assert_close(start[name][m], expected[name].detach(), rtol=1e-9, atol=1e-12)


def test_the_same_random_state_gives_the_same_fit_and_another_another(small_threshold):
    X, y = _linear_rule(900)
    a = MetaLearnedClassifier(random_state=3).fit(X, y)
    b = MetaLearnedClassifier(random_state=3).fit(X, y)
    c = MetaLearnedClassifier(random_state=4).fit(X, y)
    assert all(torch.equal(a.params_[k], b.params_[k]) for k in a.params_)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_just_above_and_below_the_threshold_the_fits_agree_in_kind(small_threshold):
    X, y = _linear_rule(2500, seed=1)
    below = MetaLearnedClassifier(random_state=0).fit(X[:small_threshold], y[:small_threshold])
    above = MetaLearnedClassifier(random_state=0).fit(X[:400], y[:400])
    test = slice(2000, 2500)
    assert below.score(X[test], y[test]) > 0.85 and above.score(X[test], y[test]) > 0.85
    assert np.mean(below.predict(X[test]) == above.predict(X[test])) > 0.85
    assert set(below.cv_loss_by_adapt_steps_) == set(above.cv_loss_by_adapt_steps_)
    assert np.allclose(above.predict_proba(X[test]).sum(1), 1.0)


def test_weights_are_counts_on_the_large_table_path(small_threshold):
    # Labels independent of X: a weight of 3 on class 1 makes its share 3/4, as three copies of each row would.
    r = np.random.default_rng(0)
    X, y = r.normal(size=(1200, 4)), r.integers(0, 2, 1200)
    weighted = MetaLearnedClassifier(random_state=0).fit(X, y, sample_weight=np.where(y == 1, 3.0, 1.0))
    copies = np.r_[np.arange(len(y)), np.repeat(np.flatnonzero(y == 1), 2)]
    repeated = MetaLearnedClassifier(random_state=0).fit(X[copies], y[copies])
    unweighted = MetaLearnedClassifier(random_state=0).fit(X, y)
    X_new = r.normal(size=(2000, 4))
    fits = {"w": weighted, "r": repeated, "u": unweighted}
    share = {name: est.predict_proba(X_new)[:, 1].mean() for name, est in fits.items()}
    assert abs(share["w"] - 0.75) < 0.08 and abs(share["r"] - 0.75) < 0.08
    assert abs(share["u"] - 0.5) < 0.08


def test_mini_batches_are_disjoint_and_hold_every_class_in_proportion():
    r = np.random.RandomState(0)
    targets = np.r_[np.zeros(900, np.int64), np.ones(90, np.int64), np.full(10, 2)]
    weight = r.uniform(0.5, 2.0, len(targets))
    pool = np.arange(0, len(targets), 1)
    batches = rows._mini_batches(targets, weight, pool, 250, 10, r, by_class=True)
    assert [len(b) for b, _ in batches] == [250] * 4
    together = np.concatenate([b for b, _ in batches])
    assert len(np.unique(together)) == len(targets)  # disjoint, and every row used
    for b, w in batches:
        np.testing.assert_array_equal(w, weight[b])
        np.testing.assert_allclose(np.bincount(targets[b], minlength=3), [225, 22.5, 2.5], atol=1)
    few = rows._mini_batches(targets, weight, pool, 250, 2, r, by_class=False)
    assert [len(b) for b, _ in few] == [250, 250]  # only the rows the batches need


def test_draws_follow_the_weights_and_keep_every_class():
    r = np.random.RandomState(0)
    targets = np.r_[np.zeros(9000, np.int64), np.ones(990, np.int64), np.full(10, 2)]
    weight = np.ones(len(targets))
    weight[:4500] = 0.0  # half of class 0 cannot be drawn
    drawn, counts = rows._draw(targets, weight, np.arange(len(targets)), 1000, r, by_class=True)
    assert counts.sum() == 1000 and np.all(weight[drawn] > 0)
    per_class = np.bincount(targets[drawn], weights=counts)
    np.testing.assert_allclose(per_class, [1000 * 4500 / 5500, 1000 * 990 / 5500, 2], atol=1)


def test_many_classes_and_regression_take_the_large_table_path(small_threshold):
    r = np.random.default_rng(0)
    y = np.arange(600) % 12
    X = 3 * r.normal(size=(12, 6))[y] + r.normal(size=(600, 6))
    clf = MetaLearnedClassifier(random_state=0).fit(X[:500], y[:500])
    assert clf.output_code_ is not None and clf.temperature_ != 1.0  # fitted on the validation sample
    assert clf.score(X[500:], y[500:]) > 0.8
    Y = np.c_[X[:, 0] - 2 * X[:, 1], X[:, 2]] + 0.1 * r.normal(size=(600, 2))
    reg = MetaLearnedRegressor(random_state=0).fit(X[:500], Y[:500])
    assert reg.score(X[500:], Y[500:]) > 0.9


def test_continuing_on_a_large_table_steps_on_a_subsample(small_threshold, monkeypatch):
    X, y = _linear_rule(1000)
    clf = MetaLearnedClassifier(random_state=0, adapt_steps=2).fit(X, y)
    sizes = []
    adapt_batch = type(clf._learner).adapt_batch

    def spy(learner, batch, *args, **kwargs):
        sizes.append(batch.x_support.shape[1])
        return adapt_batch(learner, batch, *args, **kwargs)

    monkeypatch.setattr(type(clf._learner), "adapt_batch", spy)
    before = {k: v.clone() for k, v in clf.params_.items()}
    clf.partial_fit(X, y)
    assert sizes and max(sizes) <= small_threshold
    assert not torch.equal(before["head.weight"], clf.params_["head.weight"])
    assert clf.score(X, y) > 0.85


def test_regression_steps_on_one_subsample_and_refits_the_head_on_every_row(small_threshold, monkeypatch):
    monkeypatch.setattr(rows, "_STEP_SUPPORTS", 3)  # steps on 384 rows, so that the refit has rows to add
    r = np.random.default_rng(1)
    X = r.normal(size=(1500, 5))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0, 0.3]) + np.sin(2 * X[:, 0]) + 0.1 * r.normal(size=1500)
    seen = []
    adapt_path = rows._adapt_path

    def spy(learner, batch, candidates):
        seen.append(batch.x_support.shape[1])
        return adapt_path(learner, batch, candidates)

    monkeypatch.setattr(rows, "_adapt_path", spy)
    reg = MetaLearnedRegressor(random_state=0).fit(X[:1200], y[:1200])
    assert seen == [384]
    assert reg.score(X[1200:], y[1200:]) > 0.9
    model = reg._learner.model
    targets = reg._prepare_targets(y[:1200, None], np.ones(1200), reset=False)
    support = reg._batch(X[:1200], targets, np.ones((1, 1200)))
    member = {k: v[0].double() for k, v in reg.params_.items()}  # the model runs in float32 on this path
    data = {k: v[0].double() if v.is_floating_point() else v[0] for k, v in support.support().items()}
    expected = model.double().initialize_from_support(member, data)
    for name in ("head.weight", "head.bias"):  # the ridge fit of all 1,200 rows, not of the 384 steps' rows
        torch.testing.assert_close(member[name], expected[name], rtol=1e-4, atol=1e-6)
