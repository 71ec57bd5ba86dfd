"""MetaSearchCV: warm-started hyperparameter search in the mould of scikit-learn's search estimators (private)."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import numbers
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from joblib import effective_n_jobs
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState
from sklearn.base import is_classifier
from sklearn.exceptions import FitFailedWarning

# BaseSearchCV lives in a private module, but its `_run_search` hook is the documented way to build a
# sequential search on scikit-learn's own machinery (cv_results_, refit, scoring, error_score, n_jobs).
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import Tags, check_random_state, get_tags

from automl_meta.exceptions import TaskError
from automl_meta.spaces import SearchSpace, for_estimator
from automl_meta.store import TaskDescription

_logger = logging.getLogger("automl_meta.integrations.sklearn")

__all__ = ["MetaSearchCV"]


class MetaSearchCV(BaseSearchCV):
    """Cross-validated search of an estimator's hyperparameters, warm-started from past tuning runs.

    A drop-in for ``GridSearchCV``/``RandomizedSearchCV``: each trial's configuration comes from an Optuna
    sampler, by default :class:`~automl_meta.integrations.optuna.MetaLearnedSampler`, which starts from
    configurations that worked on similar datasets (the knowledge file shipped with the package, plus the
    user's experience store) and then searches around them. Every trial is cross-validated with
    scikit-learn's own machinery, so ``cv_results_``, ``refit``, ``scoring`` and ``error_score`` mean what
    they mean for ``GridSearchCV``.

    Parameters
    ----------
    estimator : estimator object
        The estimator, or a Pipeline whose final step is tuned (``step__param`` names).
    param_distributions : dict of str to optuna distribution, SearchSpace or None, default=None
        What to tune. None takes the estimator's space from :mod:`automl_meta.spaces` (the final step's
        for a Pipeline), whose names the knowledge file uses; the space's fixed settings (e.g.
        ``max_iter=1000`` for LogisticRegression) are applied too and appear in ``best_params_``. A dict
        maps parameter names (as ``estimator.get_params()`` spells them) to Optuna distributions; names
        and ranges that past runs used are warm-started, others go to the base sampler (with a log line).
    n_trials : int, default=10
        How many configurations to cross-validate.
    scoring : str, callable, list, tuple, dict or None, default=None
        As for ``GridSearchCV``. The search maximises the ``refit`` scorer when there are several.
    cv : int, cross-validation generator or iterable, default=None
        As for ``GridSearchCV`` (5-fold; stratified for classifiers). A shuffling splitter should have a
        fixed ``random_state``: the folds are drawn again for every batch of trials.
    refit : bool, str or callable, default=True
        As for ``GridSearchCV``.
    n_jobs : int, default=None
        Jobs for the fits. The search asks the sampler for this many trials at once and cross-validates
        them in parallel (``-1``: one per core), each without knowing the others' results.
    timeout : float, default=None
        Seconds after which no new trials start (the running ones finish); at least one batch runs.
    random_state : int, RandomState instance or None, default=None
        Seeds the default sampler.
    verbose : int, default=0
        0 is silent; 1 shows a progress bar with the best score so far; 2 adds Optuna's log line per trial
        and scikit-learn's message per batch; 3 and more add scikit-learn's per-fit messages.
    sampler : optuna.samplers.BaseSampler, default=None
        Proposes the configurations (a copy is used). None means ``MetaLearnedSampler(task=(X, y),
        seed=...)`` with the bundled knowledge and the default experience store.
    callbacks : list of callable, default=None
        Called as ``callback(study, frozen_trial)`` after each trial, like ``study.optimize``'s callbacks;
        e.g. :class:`~automl_meta.integrations.optuna.ExperienceRecorder` to add the trials to a store.
    error_score : 'raise' or float, default=np.nan
        Score of a fit that fails, as for ``GridSearchCV``; a trial whose score is not finite is told to the
        sampler as failed.
    return_train_score : bool, default=False
        As for ``GridSearchCV``.
    pre_dispatch : int or str, default="2*n_jobs"
        As for ``GridSearchCV``.

    Attributes
    ----------
    cv_results_ : dict of ndarray
        One entry per trial, as for ``GridSearchCV`` (``params`` hold every setting the trial applied).
    best_estimator_ : estimator
        The estimator refitted on the whole data with ``best_params_`` (when ``refit``).
    best_score_ : float
        Mean cross-validated score of the best trial.
    best_params_ : dict
        The best trial's settings: ``clone(estimator).set_params(**best_params_)`` rebuilds it.
    best_index_ : int
        Index of the best trial in ``cv_results_``.
    study_ : optuna.study.Study
        The in-memory study of the search (its trials hold the sampled values and the mean scores).
    n_trials_ : int
        Trials run (fewer than ``n_trials`` after a timeout).
    scorer_, n_splits_, refit_time_, multimetric_, classes_, n_features_in_, feature_names_in_
        As for ``GridSearchCV``.

    See Also
    --------
    automl_meta.spaces.for_estimator : the search space of an estimator.
    automl_meta.integrations.optuna.MetaLearnedSampler : the default sampler.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.svm import SVC
    >>> from automl_meta.integrations.sklearn import MetaSearchCV
    >>> X, y = load_wine(return_X_y=True)
    >>> search = MetaSearchCV(make_pipeline(StandardScaler(), SVC()), n_trials=5, cv=3, random_state=0)
    >>> bool(search.fit(X, y).best_score_ > 0.9)
    True
    >>> sorted(search.best_params_)
    ['svc__C', 'svc__gamma', 'svc__kernel']
    """

    def __init__(
        self,
        estimator: Any,
        param_distributions: Mapping[str, BaseDistribution] | SearchSpace | None = None,
        *,
        n_trials: int = 10,
        scoring: Any = None,
        cv: Any = None,
        refit: bool | str | Callable = True,
        n_jobs: int | None = None,
        timeout: float | None = None,
        random_state: Any = None,
        verbose: int = 0,
        sampler: BaseSampler | None = None,
        callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], Any]] | None = None,
        error_score: Any = np.nan,
        return_train_score: bool = False,
        pre_dispatch: int | str = "2*n_jobs",
    ) -> None:
        super().__init__(
            estimator=estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_distributions = param_distributions
        self.n_trials = n_trials
        self.timeout = timeout
        self.random_state = random_state
        self.sampler = sampler
        self.callbacks = callbacks

    def fit(self, X: Any, y: Any = None, **params: Any) -> MetaSearchCV:
        """Run the search: ``n_trials`` cross-validated trials, then refit the best (when ``refit``).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            Targets.
        **params : dict
            Passed on to the estimator's ``fit``, the scorer and the splitter, as for ``GridSearchCV``.

        Returns
        -------
        self : MetaSearchCV
        """
        self._check_search_arguments()
        if y is None and get_tags(self.estimator).target_tags.required:
            raise ValueError(
                f"MetaSearchCV({type(self.estimator).__name__}) requires y to be passed, but the target y is None."
            )
        self._space = self._search_space()
        optuna_level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.INFO if self.verbose >= 2 else optuna.logging.WARNING)
        try:
            self.study_ = optuna.create_study(direction="maximize", sampler=self._make_sampler(X, y))
            super().fit(X, y, **params)
        finally:
            optuna.logging.set_verbosity(optuna_level)
            del self._space
            self.__dict__.pop("_last_failure", None)
        self.n_trials_ = len(self.study_.trials)
        return self

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags = copy.deepcopy(get_tags(self.estimator).target_tags)  # e.g. multi-output regressors
        tags.array_api_support = False  # the data are described (meta-features) as NumPy arrays
        return tags

    # -- the search ------------------------------------------------------------------------------------
    def _run_search(self, evaluate_candidates: Callable[..., dict[str, Any]]) -> None:
        """Ask the sampler for a batch of trials, cross-validate them, tell their scores; until done."""
        from tqdm.auto import tqdm

        study, space = self.study_, self._space
        metric = self.refit if isinstance(self.refit, str) else "score"
        batch = max(1, effective_n_jobs(self.n_jobs))
        start, done = time.monotonic(), 0
        self._last_failure: ValueError | None = None
        self._batches_scored = 0
        with tqdm(total=self.n_trials, desc="MetaSearchCV", unit="trial", disable=self.verbose < 1) as bar:
            while done < self.n_trials and not (done and self.timeout and time.monotonic() - start > self.timeout):
                trials = [study.ask() for _ in range(min(batch, self.n_trials - done))]
                scores = self._evaluate(evaluate_candidates, space, trials, metric)
                for t, score in zip(trials, scores):
                    self._tell(study, t, score)
                done += len(trials)
                bar.update(len(trials))
                if any(t.state == TrialState.COMPLETE for t in study.trials):
                    bar.set_postfix(best=f"{study.best_value:.4g}")

        if self._last_failure is not None and not self._batches_scored:
            # No batch reached cv_results_: every fit of every trial failed. Raise scikit-learn's error for
            # the last batch (it quotes the fits' errors), as GridSearchCV does when all its fits fail. A
            # batch that did reach it had some fit succeed, even if each of its trials lost a fold (NaN).
            raise self._last_failure

    def _evaluate(
        self, evaluate_candidates: Callable[..., dict[str, Any]], space: SearchSpace, trials: list, metric: str
    ) -> list[float]:
        """Cross-validate the trials' configurations; their mean scores (NaN for a trial whose fits all failed)."""
        try:
            candidates = [space.settings(space.suggest(t)) for t in trials]
            with self._quiet():
                results = evaluate_candidates(candidates, more_results={"trial_number": [t.number for t in trials]})
        except ValueError as exc:
            # scikit-learn raises when every fit of a call fails; over a search that is one batch of bad
            # trials, not the end. The batch stays out of cv_results_ (study_ keeps it as failed).
            if self.error_score == "raise" or "fits failed" not in str(exc):
                self._fail(trials)
                raise
            self._last_failure = exc
            warnings.warn(
                f"Every fit of trials {[t.number for t in trials]} failed:{exc}", FitFailedWarning, stacklevel=4
            )
            return [math.nan] * len(trials)
        except BaseException:
            self._fail(trials)  # no trial stays RUNNING after an error or Ctrl-C
            raise
        key = f"mean_test_{metric}"
        if key not in results:
            self._fail(trials)
            raise ValueError(
                f"MetaSearchCV maximises one score; the scorer returned {sorted(results)} without "
                f"{key!r}. With several scorers, set refit to the name of the one to maximise."
            )
        self._batches_scored += 1
        return [float(v) for v in results[key][-len(trials) :]]

    def _fail(self, trials: list) -> None:
        for t in trials:
            self.study_.tell(t, state=TrialState.FAIL)

    def _tell(self, study: optuna.Study, trial: optuna.Trial, score: float) -> None:
        finite = math.isfinite(score)
        frozen = study.tell(trial, score if finite else None, state=TrialState.COMPLETE if finite else TrialState.FAIL)
        for callback in self.callbacks or ():
            callback(study, frozen)

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """At verbose=1 the progress bar replaces scikit-learn's "Fitting k folds ..." line per batch."""
        if self.verbose == 1:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        else:
            yield

    # -- set-up ------------------------------------------------------------------------------------------
    def _check_search_arguments(self) -> None:
        """ValueError/TypeError naming the argument, for what BaseSearchCV does not check itself."""
        if not isinstance(self.n_trials, numbers.Integral) or isinstance(self.n_trials, bool) or self.n_trials < 1:
            raise ValueError(f"n_trials must be a positive integer, got {self.n_trials!r}.")
        timeout = self.timeout
        if timeout is not None and not (isinstance(timeout, numbers.Real) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}.")
        if self.sampler is not None and not isinstance(self.sampler, BaseSampler):
            raise TypeError(f"sampler must be an optuna.samplers.BaseSampler or None, got {type(self.sampler)}.")
        if self.callbacks is not None and not all(callable(c) for c in self.callbacks):
            raise TypeError("callbacks must be a list of callables callback(study, frozen_trial).")
        multimetric = isinstance(self.scoring, (list, tuple, dict))
        if multimetric and not isinstance(self.refit, str):
            raise ValueError(
                "MetaSearchCV maximises one score: with several scorers, set refit to the name of the one to "
                f"maximise (got refit={self.refit!r})."
            )

    def _search_space(self) -> SearchSpace:
        """The space to search: ``param_distributions`` or the estimator's space in automl_meta.spaces."""
        given = self.param_distributions
        if given is None:
            return for_estimator(self.estimator)  # ValueError listing the supported estimators
        if isinstance(given, SearchSpace):
            return given
        if not isinstance(given, Mapping) or not given:
            raise TypeError(
                "param_distributions must be a non-empty dict of parameter names to Optuna distributions, "
                f"a SearchSpace or None; got {given!r}."
            )
        wrong = sorted(n for n, d in given.items() if not isinstance(d, BaseDistribution))
        if wrong:
            raise TypeError(
                f"param_distributions values must be Optuna distributions (optuna.distributions."
                f"FloatDistribution, IntDistribution, CategoricalDistribution); not for {wrong}."
            )
        unknown = sorted(set(given) - set(self.estimator.get_params(deep=True)))
        if unknown:
            raise ValueError(
                f"param_distributions names {unknown} that {type(self.estimator).__name__} does not have; "
                "see estimator.get_params() for the names (step__param inside a Pipeline)."
            )
        return SearchSpace(name="param_distributions", estimators=(type(self.estimator),), params=given)

    def _make_sampler(self, X: Any, y: Any) -> BaseSampler:
        """A copy of ``sampler``, or a MetaLearnedSampler that knows the data (its meta-features)."""
        if self.sampler is not None:
            return copy.deepcopy(self.sampler)  # fit must not change the sampler the user passed
        from .optuna import MetaLearnedSampler

        seed = self.random_state
        if seed is not None and not isinstance(seed, numbers.Integral):
            seed = int(check_random_state(seed).randint(np.iinfo(np.int32).max))
        task_type = "classification" if is_classifier(self.estimator) else "regression"
        try:
            target = np.asarray(y)
            if target.ndim == 2 and target.shape[1] == 1:
                target = target.ravel()  # a column vector describes the same task as its 1-D target
            task = TaskDescription.from_data(X, target, task_type=task_type)
        except (TaskError, ValueError, TypeError) as exc:
            _logger.warning("MetaSearchCV cannot describe the data (%s); the search is not warm-started.", exc)
            task = None
        return MetaLearnedSampler(task=task, seed=seed)
