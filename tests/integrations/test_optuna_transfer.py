"""The surrogates behind MetaLearnedSampler's transfer phase."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution

from automl_meta.integrations.optuna import _transfer
from automl_meta.integrations.optuna._search_space import _Encoding
from automl_meta.integrations.optuna._transfer import (
    FittedProcesses,
    GaussianProcess,
    _SourceModel,
    copula,
    discordance,
    expected_improvement,
    expected_minimum,
    processes_of,
    ranking_weights,
    transfer,
)
from automl_meta.store import ExperienceStore


def test_copula_depends_only_on_the_order_and_is_standard_normal():
    values = np.random.default_rng(0).lognormal(size=200) * 1e6
    z = copula(values)
    np.testing.assert_allclose(z, copula(np.log(values)))  # any increasing transform gives the same scores
    assert abs(z.mean()) < 1e-9 and 0.9 < z.std() < 1.05
    assert np.argmin(z) == np.argmin(values) and np.isfinite(copula(np.array([1.0, 1e300, -1e300]))).all()
    tied = copula(np.array([1.0, 1.0, 2.0]))
    assert tied[0] == tied[1] < tied[2]


def test_gaussian_process_fits_a_smooth_function_and_is_unsure_away_from_data():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 0.6, size=(40, 1))

    def f(x):
        return np.sin(8 * x[:, 0])

    gp = GaussianProcess(X, f(X))
    Xq = np.linspace(0.05, 0.55, 50)[:, None]
    mean, std = gp.predict(Xq)
    assert np.abs(mean - f(Xq)).max() < 0.1
    _, far = gp.predict(np.array([[1.0]]))
    assert far[0] > 5 * std.max()


def test_per_dimension_length_scales_find_the_dimension_that_matters():
    rng = np.random.default_rng(2)
    X = rng.uniform(size=(60, 3))
    y = np.sin(6 * X[:, 1])  # only the second coordinate matters
    gp = GaussianProcess(X, y, per_dimension=True)
    assert gp._inverse_length[1] > 3 * max(gp._inverse_length[0], gp._inverse_length[2])
    Xq = rng.uniform(size=(200, 3))
    iso = GaussianProcess(X, y)

    def error(g):
        return np.abs(g.mean(Xq) - np.sin(6 * Xq[:, 1])).mean()

    assert error(gp) < 0.5 * error(iso)


def test_fitted_processes_are_reused_for_the_same_data_only():
    cache = FittedProcesses(max_size=2)
    rng = np.random.default_rng(3)
    X, y = rng.uniform(size=(25, 2)), rng.normal(size=25)
    gp = cache.fit(X, y, per_dimension=True)
    assert cache.fit(X.copy(), y.copy(), per_dimension=True) is gp
    Xq = rng.uniform(size=(10, 2))
    np.testing.assert_array_equal(gp.mean(Xq), GaussianProcess(X, y, per_dimension=True).mean(Xq))
    others = [cache.fit(X, y), cache.fit(X, y[::-1].copy(), per_dimension=True)]
    assert gp not in others and others[0] is not others[1]
    # at most max_size are kept: the least recently used one is refitted
    assert len(cache) == 2 and cache.fit(X, y, per_dimension=True) is not gp


def test_each_store_object_owns_its_fitted_processes(sqlite_url):
    import gc
    import weakref

    a, b = ExperienceStore(sqlite_url), ExperienceStore(sqlite_url)
    assert processes_of(a) is processes_of(a) and processes_of(a) is not processes_of(b)
    assert processes_of(a).max_size == 256
    cache = weakref.ref(processes_of(b))
    del b
    gc.collect()
    assert cache() is None  # dropped with its store


@pytest.mark.parametrize("per_dimension", [False, True])
def test_leave_one_out_means_equal_refits_without_the_point(per_dimension):
    rng = np.random.default_rng(1)
    X = rng.uniform(size=(15, 2))
    y = np.sin(6 * X[:, 0]) + 0.1 * rng.normal(size=15)
    gp = GaussianProcess(X, y, per_dimension=per_dimension)
    loo, kernel = gp.loo_mean(), gp._cross(X)  # the fitted kernel between all the points
    for i in (0, 7, 14):
        keep = np.arange(15) != i
        K = kernel[np.ix_(keep, keep)] + gp.noise * np.eye(14)
        expected = kernel[i, keep] @ np.linalg.solve(K, y[keep])
        np.testing.assert_allclose(loo[i], expected, rtol=1e-6, atol=1e-9)


def test_ranking_weights_go_to_the_model_that_orders_the_observations():
    y = np.arange(8.0)
    right, wrong = y + 0.1 * np.sin(y), -y
    w = ranking_weights(np.stack([wrong, right]), None, y, np.random.RandomState(0))
    assert w[1] > 0.9 and abs(w.sum() - 1) < 1e-12
    # With the study's own model ordering well, a source that orders backwards gets nothing.
    w = ranking_weights(np.stack([wrong]), right, y, np.random.RandomState(0))
    assert w[0] == 0 and w[1] == 1


def test_expected_improvement_prefers_low_means_and_spread():
    ei = expected_improvement(np.array([0.0, -1.0, 1.0, 1.0]), np.array([1.0, 1.0, 1.0, 3.0]), best=0.0)
    assert ei[1] > ei[0] > ei[2] and ei[3] > ei[2] and (ei >= 0).all()


def test_expected_minimum_matches_sampling_and_the_hard_minimum_without_spread():
    rng = np.random.default_rng(0)
    reached, mean = np.array([0.1, 0.5, np.inf]), np.array([0.3, 0.2, 0.4])
    exact = expected_minimum(reached, mean, 0.2)
    draws = mean + 0.2 * rng.standard_normal((200_000, 3))
    np.testing.assert_allclose(exact[:2], np.minimum(reached[:2], draws[:, :2]).mean(0), atol=3e-3)
    assert exact[2] == 0.4  # nothing reached yet: the mean itself
    np.testing.assert_array_equal(expected_minimum(reached, mean, 0.0), np.minimum(reached, mean))


def test_discordance_of_several_models_stacks_the_single_model_matrices():
    rng = np.random.default_rng(2)
    y, preds = rng.normal(size=6), rng.normal(size=(6, 3))
    stacked = discordance(preds, y)
    assert stacked.shape == (6, 6, 3)
    for m in range(3):
        np.testing.assert_array_equal(stacked[:, :, m], discordance(preds[:, m], y))
    assert discordance(y, y).sum() == 0 and discordance(-y, y).sum() == 15  # all 15 pairs reversed


def test_the_range_test_agrees_with_optunas_own():
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from automl_meta.integrations.optuna._search_space import _contains

    dists = [
        FloatDistribution(-1, 1),
        FloatDistribution(1e-3, 1, log=True),
        FloatDistribution(0, 1, step=0.1),
        IntDistribution(0, 10),
        IntDistribution(1, 64, log=True),
        IntDistribution(0, 12, step=3),
        CategoricalDistribution(["a", None, 1, 2.5, True]),
    ]
    values = [
        -2,
        -1,
        -0.5,
        0,
        1e-4,
        0.3,
        0.30000000001,
        0.35,
        1,
        3,
        3.0,
        5,
        9,
        10,
        12,
        64,
        65,
        float("nan"),
        "a",
        None,
        2.5,
        True,
        "x",
        np.float64(0.2),
        np.int64(6),
        [1],
    ]
    for d in dists:
        for v in values:
            try:
                expected = bool(d._contains(d.to_internal_repr(v)))
            except (ValueError, TypeError):
                expected = False
            assert _contains(d, v) == expected, (d, v)


@pytest.mark.parametrize("tied", [True, False])
def test_a_flat_best_sends_half_the_candidates_to_the_whole_space(monkeypatch, tied):
    """Trials that share the best loss mark a flat region: steps around it would change nothing."""
    space = {"a": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}
    encoding = _Encoding(space)
    U = np.random.default_rng(0).uniform(size=(40, 2))
    loss = ((U - 0.2) ** 2).sum(1)  # a past task whose best lies at (0.2, 0.2)
    gp = GaussianProcess(encoding.features(U), copula(loss))
    models = [_SourceModel(1.0, gp, U, (loss - loss.min()) / (loss.max() - loss.min()))]
    study = optuna.create_study()
    for i, (a, b) in enumerate([(0.2, 0.2), (0.25, 0.2), (0.2, 0.25), (0.15, 0.2)]):
        value = 1.0 if tied or i == 0 else 1.0 + 1e-6 * i  # untied: the first is best by a hair
        study.add_trial(optuna.trial.create_trial(params={"a": a, "b": b}, distributions=space, value=value))
    scored = []
    monkeypatch.setattr(_transfer, "snap", lambda enc, cand: scored.append(cand.copy()) or cand)
    proposal = transfer(study, encoding, models, np.random.RandomState(0), n_candidates=64, prior_weight=2.0)
    far = np.linalg.norm(scored[0] - 0.2, axis=1) > 0.45  # beyond 4.5 of the largest step's deviations
    assert len(scored[0]) == 64 and (far.sum() >= 10 if tied else not far.any())
    assert tied or np.hypot(proposal["a"] - 0.2, proposal["b"] - 0.2) < 0.45
