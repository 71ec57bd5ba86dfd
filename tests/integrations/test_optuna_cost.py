"""MetaLearnedSampler's cost as a study grows: the own-trial cap, the vectorised ranking weights, the hand-over."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler
from sklearn.datasets import make_classification

from automl_meta.integrations.optuna import ExperienceRecorder, MetaLearnedSampler, _transfer
from automl_meta.integrations.optuna._own import _OWN_BEST, _OWN_RECENT, _kept, own_results
from automl_meta.integrations.optuna._search_space import _Encoding
from automl_meta.integrations.optuna._snapping import snap
from automl_meta.integrations.optuna._transfer import (
    GaussianProcess,
    _SourceModel,
    discordance,
    ranking_weights,
    transfer,
)
from automl_meta.store import ExperienceStore, TaskDescription

from ._optuna_knowledge import new_similar, quadratic

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"x": FloatDistribution(-5, 5), "n": IntDistribution(1, 8)}


def reference_ranking_weights(source_preds, target_loo, y, rng, n_bootstrap=100):
    """The ranking weights summed one bootstrap resample at a time, as first written."""
    preds = list(source_preds) + ([target_loo] if target_loo is not None else [])
    D = np.stack([discordance(p, y) for p in preds]).astype(float)
    idx = rng.randint(0, len(y), size=(n_bootstrap, len(y)))
    losses = np.stack([D[:, i][:, :, i].sum((1, 2)) for i in idx])
    best = losses == losses.min(1, keepdims=True)
    weights = (best / best.sum(1, keepdims=True)).mean(0)
    if target_loo is not None:
        worse = (losses[:, :-1] > losses[:, -1:]).mean(0) > 0.95
        weights[:-1][worse] = 0.0
        if weights.sum() == 0:
            weights[-1] = 1.0
    return weights / weights.sum() if weights.sum() > 0 else np.full(len(preds), 1.0 / len(preds))


@pytest.mark.parametrize("case", range(60))
def test_ranking_weights_equal_the_resample_by_resample_sums_exactly(case):
    r = np.random.default_rng(case)
    n, models, n_bootstrap = int(r.integers(2, 90)), int(r.integers(1, 25)), int(r.integers(1, 130))
    y = r.normal(size=n)
    preds = r.normal(size=(models, n))
    if case % 3 == 0:  # ties in the observations and in the predictions
        y, preds = np.round(y), np.round(preds)
    target = None if case % 4 == 0 else r.normal(size=n)
    seed = int(r.integers(2**31))
    rng, reference_rng = np.random.RandomState(seed), np.random.RandomState(seed)
    weights = ranking_weights(preds, target, y, rng, n_bootstrap)
    expected = reference_ranking_weights(preds, target, y, reference_rng, n_bootstrap)
    np.testing.assert_array_equal(weights, expected)  # bit for bit: proposals must not change
    assert rng.randint(2**31) == reference_rng.randint(2**31)  # and the sampler's later draws neither


def _random_distribution(r: np.random.Generator):
    kind = int(r.integers(7))
    if kind == 0:
        return FloatDistribution(float(r.uniform(-5, 0)), float(r.uniform(0.1, 5)))
    if kind == 1:
        low = float(10 ** r.uniform(-10, 0))
        return FloatDistribution(low, low * float(10 ** r.uniform(0, 6)), log=True)
    if kind == 2:
        return FloatDistribution(-1.0, 2.0, step=float(r.choice([0.1, 0.25, 0.3, 0.5])))
    if kind == 3:
        low = int(r.integers(-5, 5))
        step = int(r.integers(1, 4))
        return IntDistribution(low, low + step * int(r.integers(0, 1000)), step=step)
    if kind == 4:
        low = int(r.integers(1, 20))
        return IntDistribution(low, low + int(r.integers(0, 5000)), log=True)
    if kind == 5:  # True == 1 and 0 == False: to_internal_repr maps such choices to the first equal one
        pool = ["a", "b", 1, 2.5, None, True, 0, False]
        return CategoricalDistribution([pool[i] for i in r.permutation(len(pool))[: int(r.integers(1, 6))]])
    return FloatDistribution(1.5, 1.5) if r.random() < 0.5 else IntDistribution(3, 3)


def _row_by_row(encoding: _Encoding, U: np.ndarray) -> np.ndarray:
    """Snapping as first written: decode each row, encode it again (a row outside the space left as it is)."""
    snapped = [encoding.unit(encoding.decode(u)) for u in U]
    return np.stack([u if s is None else s for u, s in zip(U, snapped)])


@pytest.mark.parametrize("case", range(40))
def test_snap_equals_decoding_and_encoding_each_row(case):
    r = np.random.default_rng(case)
    encoding = _Encoding({f"p{i}": _random_distribution(r) for i in range(int(r.integers(1, 7)))})
    rng = np.random.RandomState(case)
    U = encoding.perturb(rng, encoding.uniform(rng, 200), 0.1)
    numeric = np.flatnonzero(~encoding.cat)
    U[:6, numeric] = np.array([0.0, 1.0, -0.0, 0.5, 1e-300, 1.0 - 1e-16])[:, None]
    np.testing.assert_array_equal(snap(encoding, U), _row_by_row(encoding, U))  # bit for bit: proposals unchanged
    assert snap(encoding, U).tobytes() == _row_by_row(encoding, U).tobytes()  # -0.0 and 0.0 alike


def test_kept_results_are_all_of_a_short_study_and_the_recent_and_best_of_a_long_one():
    cap = _OWN_RECENT + _OWN_BEST
    np.testing.assert_array_equal(_kept(np.arange(cap, 0, -1.0)), np.arange(cap))
    losses = np.random.default_rng(0).normal(size=3 * cap)
    losses[7] = -100.0  # the best result comes early
    kept = _kept(losses)
    earlier = len(losses) - _OWN_RECENT
    assert len(kept) == cap and (np.diff(kept) > 0).all()  # in trial order
    np.testing.assert_array_equal(kept[-_OWN_RECENT:], np.arange(earlier, len(losses)))
    np.testing.assert_array_equal(kept[:_OWN_BEST], np.sort(np.argsort(losses[:earlier])[:_OWN_BEST]))
    assert 7 in kept


def _direct_results(study: optuna.Study, encoding: _Encoding) -> tuple[list[float], list[np.ndarray]]:
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and np.isfinite(t.value)]
    pairs = [(sign * t.value, encoding.unit(t.params)) for t in done]
    return [v for v, u in pairs if u is not None], [u for _, u in pairs if u is not None]


def test_own_results_remember_each_trial_s_vector_and_match_encoding_it_again(tmp_path):
    encoding = _Encoding(SPACE)
    studies = [
        optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)),
        optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=1),
            storage=f"sqlite:///{tmp_path / 'optuna.db'}",  # new trial objects on every read
        ),
    ]
    for round_ in range(3):  # the two studies alternate on one encoding: neither sees the other's vectors
        for study in studies:
            study.optimize(quadratic(float(round_)), n_trials=7)
            study.optimize(lambda t: float("nan") if t.suggest_float("x", -5, 5) > 0 else float("inf"), n_trials=2)
            study.optimize(lambda t: t.suggest_float("x", 5, 9), n_trials=1)  # outside SPACE: no vector
            losses, units = own_results(study, encoding)
            expected_losses, expected_units = _direct_results(study, encoding)
            assert losses == expected_losses and len(units) == len(expected_units) == 7 * (round_ + 1)
            assert all(a.tobytes() == b.tobytes() for a, b in zip(units, expected_units))
    first, again = own_results(studies[0], encoding)[1], own_results(studies[0], encoding)[1]
    assert all(a is b for a, b in zip(first, again)) and not first[0].flags.writeable


def _source_models(encoding: _Encoding, rng: np.random.Generator) -> list[_SourceModel]:
    models = []
    for centre in (0.3, 0.7):
        U = snap(encoding, rng.uniform(size=(30, 2)))
        loss = (U[:, 0] - centre) ** 2 + 0.1 * U[:, 1]
        gp = GaussianProcess(encoding.features(U), _transfer.copula(loss), per_dimension=True)
        models.append(_SourceModel(0.5, gp, U, (loss - loss.min()) / (loss.max() - loss.min())))
    return models


@pytest.mark.parametrize("n_trials", [40, 100, 250])
def test_the_study_s_own_process_and_ranking_see_at_most_the_cap(monkeypatch, n_trials):
    encoding = _Encoding(SPACE)
    models = _source_models(encoding, np.random.default_rng(1))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(quadratic(1.0), n_trials=n_trials)
    fitted, ranked = [], []

    class SpyProcess(GaussianProcess):
        def __init__(self, X, y, **kwargs):
            fitted.append(np.asarray(X).copy())
            super().__init__(X, y, **kwargs)

    def spy_ranking(source_preds, target_loo, y, rng, n_bootstrap=100):
        ranked.append(len(y))
        return ranking_weights(source_preds, target_loo, y, rng, n_bootstrap)

    monkeypatch.setattr(_transfer, "GaussianProcess", SpyProcess)
    monkeypatch.setattr(_transfer, "ranking_weights", spy_ranking)
    proposal = transfer(study, encoding, models, np.random.RandomState(0), n_candidates=64, prior_weight=2.0)
    expected = min(n_trials, _OWN_RECENT + _OWN_BEST)
    assert [len(X) for X in fitted] == [expected] and ranked == [expected]
    best = encoding.features(encoding.unit(study.best_params)[None, :])
    assert (fitted[0] == best).all(1).any()  # the best trial, around which the phase steps, is always kept
    assert encoding.unit(proposal) is not None
    assert all(proposal != t.params for t in study.trials)  # never a configuration the study has run


class RecordingSampler(BaseSampler):
    """A base sampler that gives every parameter a recognisable value and records which trials asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, str]] = []

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        self.asked.extend((trial.number, name) for name in search_space)
        return {name: self._value(d) for name, d in search_space.items()}

    def sample_independent(self, study, trial, param_name, param_distribution):
        self.asked.append((trial.number, param_name))
        return self._value(param_distribution)

    @staticmethod
    def _value(d):
        return d.low if isinstance(d, IntDistribution) else d.low + 0.123456 * (d.high - d.low)


@pytest.fixture(scope="module")
def past_task_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('cost') / 'experience.db'}"
    store = ExperienceStore(url)
    task = TaskDescription.from_data(*make_classification(300, 10, random_state=1), name="near")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(quadratic(2.0), n_trials=30, callbacks=[ExperienceRecorder(store=store, task=task)])
    store.close()
    return url


def test_trials_after_the_transfer_phase_go_to_the_base_sampler(past_task_url):
    base = RecordingSampler()
    sampler = MetaLearnedSampler(
        store=past_task_url, task=new_similar(), seed=0, base_sampler=base, n_portfolio=2, n_transfer=3, knowledge=None
    )
    study = optuna.create_study(sampler=sampler)
    study.optimize(quadratic(2.0), n_trials=8)
    assert sorted(set(base.asked)) == [(number, name) for number in (5, 6, 7) for name in ("n", "x")]
    stub = {"x": -5 + 0.123456 * 10, "n": 1}
    assert all(t.params == stub for t in study.trials[5:])
    assert all(t.params != stub for t in study.trials[:5])  # the portfolio (0, 1) and the transfer phase (2-4)


def test_a_negative_n_transfer_raises_on_the_first_trial(past_task_url):
    sampler = MetaLearnedSampler(store=past_task_url, task=new_similar(), n_transfer=-1, knowledge=None)  # stored only
    study = optuna.create_study(sampler=sampler)
    with pytest.raises(ValueError, match="n_transfer"):
        study.ask()
