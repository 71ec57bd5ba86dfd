"""MetaSearchCV: a scikit-learn search estimator whose trials come from the warm-started sampler."""

from __future__ import annotations

import json
import logging
import pickle

import numpy as np
import optuna
import pytest
from joblib import parallel_config
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.samplers import RandomSampler
from optuna.trial import TrialState
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_regressor
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from automl_meta import knowledge
from automl_meta.integrations.optuna import MetaLearnedSampler
from automl_meta.integrations.sklearn import MetaSearchCV

X, y = make_classification(150, 6, n_informative=4, random_state=0)


@pytest.fixture(autouse=True)
def _own_store(tmp_path, monkeypatch):
    """The default sampler reads the default store: a fresh one per test, never the user's."""
    monkeypatch.setenv("AUTOML_META_STORE", f"sqlite:///{tmp_path / 'experience.db'}")


def test_the_first_trial_is_a_configuration_of_the_bundled_knowledge():
    search = MetaSearchCV(make_pipeline(StandardScaler(), SVC()), n_trials=2, cv=3, random_state=0).fit(X, y)
    block = knowledge.load().block("svc", "classification")
    stored = {json.dumps(block.config(i), sort_keys=True) for i in range(len(block.configs))}
    first = {k.removeprefix("svc__"): v for k, v in search.study_.trials[0].params.items()}
    assert json.dumps(first, sort_keys=True) in stored
    assert isinstance(search.study_.sampler, MetaLearnedSampler)
    # Every setting the trial applied is in cv_results_, the fixed kernel included; best_params_ rebuild it.
    assert search.cv_results_["params"][0]["svc__kernel"] == "rbf"
    rebuilt = clone(search.estimator).set_params(**search.best_params_)
    assert rebuilt.get_params()["svc__C"] == search.best_estimator_.get_params()["svc__C"]


def test_it_is_an_estimator_like_gridsearchcv_in_pipelines_cross_val_score_clone_and_pickle():
    search = MetaSearchCV(LogisticRegression(), n_trials=3, cv=2, sampler=RandomSampler(seed=0))
    assert clone(search).get_params(deep=False).keys() == search.get_params(deep=False).keys()
    scores = cross_val_score(make_pipeline(StandardScaler(), search), X, y, cv=2)
    assert scores.shape == (2,) and np.all(scores > 0.6)
    fitted = search.fit(X, y)
    assert fitted.n_trials_ == 3 and len(fitted.cv_results_["mean_test_score"]) == 3
    assert list(fitted.classes_) == [0, 1]
    assert fitted.best_score_ == max(t.value for t in fitted.study_.trials)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))
    assert search.sampler is not fitted.study_.sampler  # the user's sampler is copied, not consumed


def test_a_regressor_search_is_a_regressor_and_a_seed_fixes_the_trials():
    Xr, yr = make_regression(120, 5, noise=3.0, random_state=0)
    runs = [MetaSearchCV(Ridge(), n_trials=3, cv=2, random_state=7).fit(Xr, yr) for _ in range(2)]
    assert runs[0].cv_results_["params"] == runs[1].cv_results_["params"]
    assert runs[0].score(Xr, yr) > 0.9 and is_regressor(runs[0])


def test_an_unknown_space_falls_back_to_the_base_sampler_with_a_log_line_and_still_tunes(caplog):
    space = {"max_depth": optuna.distributions.IntDistribution(1, 6), "criterion": CategoricalDistribution(["gini"])}
    with caplog.at_level(logging.WARNING, logger="automl_meta"):
        search = MetaSearchCV(DecisionTreeClassifier(random_state=0), space, n_trials=4, cv=2, random_state=0)
        search.fit(X, y)
    assert "never seen parameters" in caplog.text
    assert search.n_trials_ == 4 and all(t.state == TrialState.COMPLETE for t in search.study_.trials)
    assert all(1 <= p["max_depth"] <= 6 for p in search.cv_results_["params"])


def test_n_jobs_2_runs_trials_in_pairs_and_loses_none():
    seen = []
    search = MetaSearchCV(
        SVC(), n_trials=5, cv=2, n_jobs=2, sampler=RandomSampler(seed=1), callbacks=[lambda s, t: seen.append(t)]
    )
    with parallel_config(backend="threading"):  # the same batches as processes, without their start-up time
        search.fit(X, y)
    assert len(search.cv_results_["params"]) == 5 == len(seen)
    assert [t.state for t in search.study_.trials] == [TrialState.COMPLETE] * 5
    # Trials in one batch start before either ends: their datetime_start precede the other's completion.
    first, second = search.study_.trials[:2]
    assert second.datetime_start <= first.datetime_complete


class _FailsAboveHalf(ClassifierMixin, BaseEstimator):
    def __init__(self, c=0.1):
        self.c = c

    def fit(self, X, y):
        if self.c > 0.5:
            raise ValueError("c too large")
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_failed_fits_are_failed_trials_and_the_search_goes_on():
    space = {"c": FloatDistribution(0.0, 1.0)}
    with pytest.warns(FitFailedWarning, match="c too large"):
        search = MetaSearchCV(_FailsAboveHalf(), space, n_trials=8, cv=2, sampler=RandomSampler(seed=0)).fit(X, y)
    trials = search.study_.trials
    assert len(trials) == 8 and {t.state for t in trials} == {TrialState.COMPLETE, TrialState.FAIL}
    for t in trials:
        assert (t.state == TrialState.FAIL) == (t.params["c"] > 0.5)
    # cv_results_ holds the trials that scored; trial_number maps its rows to the study's trials.
    completed = [t.number for t in trials if t.state == TrialState.COMPLETE]
    assert list(search.cv_results_["trial_number"]) == completed
    assert search.best_params_["c"] <= 0.5


def test_error_score_raise_raises_and_leaves_no_trial_running():
    space = {"c": FloatDistribution(0.6, 1.0)}
    search = MetaSearchCV(_FailsAboveHalf(), space, n_trials=3, cv=2, error_score="raise", sampler=RandomSampler(0))
    with pytest.raises(ValueError, match="c too large"):
        search.fit(X, y)
    assert [t.state for t in search.study_.trials] == [TrialState.FAIL]


def test_a_search_whose_every_fit_fails_raises_scikit_learns_error_naming_the_cause():
    search = MetaSearchCV(_FailsAboveHalf(), {"c": FloatDistribution(0.6, 1.0)}, n_trials=3, cv=2)
    with pytest.warns(FitFailedWarning), pytest.raises(ValueError, match="All the 2 fits failed"):
        search.fit(X, y)
    assert search.study_.trials[-1].state == TrialState.FAIL
    with pytest.raises(ValueError, match="requires y to be passed"):
        search.fit(X, None)


class _FailsSomeFolds(_FailsAboveHalf):
    """Fails every fit above c=0.8; between 0.5 and 0.8 only fits on an even number of rows."""

    def fit(self, X, y):
        if self.c > 0.8 or (self.c > 0.5 and len(X) % 2 == 0):
            raise ValueError("c too large")
        self.classes_ = np.unique(y)
        return self


def test_a_search_with_some_fits_succeeding_does_not_raise_when_every_trial_fails():
    # With cv=3 on 151 rows, one training fold has 100 rows: trials in (0.5, 0.8] lose that fold (NaN mean,
    # a failed trial, but a row in cv_results_); trials above 0.8 lose every fit (that batch raises inside).
    X151, y151 = make_classification(151, 6, random_state=0)
    search = MetaSearchCV(
        _FailsSomeFolds(),
        {"c": FloatDistribution(0.5, 1.0)},
        n_trials=8,
        cv=3,
        refit=False,
        sampler=RandomSampler(seed=1),
    )
    with pytest.warns(FitFailedWarning):
        search.fit(X151, y151)
    cs = [t.params["c"] for t in search.study_.trials]
    assert any(c > 0.8 for c in cs) and any(c <= 0.8 for c in cs)  # both kinds of failure happened
    assert {t.state for t in search.study_.trials} == {TrialState.FAIL}
    assert list(search.cv_results_["trial_number"]) == [t.number for t in search.study_.trials if t.params["c"] <= 0.8]
    assert np.isnan(search.cv_results_["mean_test_score"]).all()


def test_several_scorers_need_refit_to_name_the_one_to_maximise():
    search = MetaSearchCV(LogisticRegression(), n_trials=2, cv=2, scoring=["accuracy", "roc_auc"], refit="roc_auc")
    search.fit(X, y)
    assert search.best_score_ == max(search.cv_results_["mean_test_roc_auc"])
    with pytest.raises(ValueError, match="set refit to the name"):
        MetaSearchCV(LogisticRegression(), n_trials=2, scoring=["accuracy", "roc_auc"]).fit(X, y)


def test_a_timeout_stops_starting_trials_after_the_first():
    search = MetaSearchCV(SVC(), n_trials=50, cv=2, timeout=1e-9, sampler=RandomSampler(seed=0)).fit(X, y)
    assert search.n_trials_ == 1


def test_verbose_1_shows_a_progress_bar_instead_of_scikit_learns_lines(capsys, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    MetaSearchCV(SVC(), n_trials=2, cv=2, verbose=1, sampler=RandomSampler(seed=0)).fit(X, y)
    out, err = capsys.readouterr()
    assert "Fitting" not in out and "MetaSearchCV" in err


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_trials": 0}, ValueError, "n_trials must be a positive integer"),
        ({"timeout": -1}, ValueError, "timeout must be a positive number"),
        ({"param_distributions": {"C": [0.1, 1.0]}}, TypeError, "must be Optuna distributions"),
        ({"param_distributions": {"Cc": FloatDistribution(0.1, 1)}}, ValueError, r"\['Cc'\] that SVC does not have"),
        ({"sampler": "tpe"}, TypeError, "sampler must be an optuna"),
    ],
)
def test_bad_arguments_say_what_was_wrong(kwargs, error, match):
    with pytest.raises(error, match=match):
        MetaSearchCV(SVC(), **kwargs).fit(X, y)


def test_an_estimator_without_a_space_lists_the_supported_ones():
    with pytest.raises(ValueError, match="No search space for DecisionTreeClassifier. Supported estimators: .*SVC"):
        MetaSearchCV(DecisionTreeClassifier()).fit(X, y)


@parametrize_with_checks(
    [MetaSearchCV(SVC(), n_trials=2, cv=2, random_state=0), MetaSearchCV(Ridge(), n_trials=2, cv=2, random_state=0)]
)
def test_scikit_learns_estimator_checks_pass_with_the_default_sampler(estimator, check):
    check(estimator)
