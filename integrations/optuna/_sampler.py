"""MetaLearnedSampler: Optuna's sampler contract over the store's knowledge, the portfolio and the transfer phase.

One trial runs: ``before_trial`` (the first one prepares the sampler: :meth:`MetaLearnedSampler._prepare`),
``infer_relative_search_space`` and ``sample_relative`` (or ``sample_independent`` per parameter), each
finding the stored search space for the trial (:meth:`MetaLearnedSampler._match`); then a portfolio
configuration (``_portfolio``) or a transfer step (``_transfer``), and the base sampler for the rest;
``after_trial`` forgets the trial.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from automl_meta._validation import check_int_at_least, check_nonnegative_float
from automl_meta.knowledge import KnowledgeBase
from automl_meta.store import ExperienceStore, TaskDescription

from ._bundled import KnowledgeLike, prefix_of, resolve_knowledge
from ._knowledge import _Knowledge, load_knowledge, match_space, source_models, unconditional
from ._portfolio import _Portfolio
from ._search_space import _clip, _Encoding, _kind, study_ranges
from ._task import TaskLike, _as_store, _as_task
from ._transfer import _SourceModel, processes_of, transfer

_logger = logging.getLogger("automl_meta.integrations.optuna")

# The version of the sampling behaviour. Bump it by hand whenever MetaLearnedSampler (or the processes of
# ``_transfer``) would propose other configurations for the same knowledge, store, task and seed:
# studies/warmstart_real.py keys its kept cases by it (and by the knowledge file), and runs again only the
# cases of another version.
_SAMPLER_VERSION = "a598b76e86db5777"

_Slot = tuple[str, int]  # a search space of the knowledge: (Pipeline prefix it was loaded for, its index)


def _check_arguments(n_neighbors: Any, n_portfolio: Any, prior_weight: Any, n_candidates: Any, n_transfer: Any) -> None:
    """Raise ValueError for a count or a weight out of range (or of the wrong type)."""
    check_int_at_least(n_transfer, "n_transfer", 0)
    check_int_at_least(n_neighbors, "n_neighbors", 1)
    check_int_at_least(n_candidates, "n_candidates", 1)
    check_int_at_least(n_portfolio, "n_portfolio", 0)
    check_nonnegative_float(prior_weight, "prior_weight", finite=False)


class MetaLearnedSampler(BaseSampler):
    """Warm-start a study from the experience store: a portfolio from similar tasks, then transfer, then TPE.

    See :mod:`automl_meta.integrations.optuna` for how each phase works.

    Parameters
    ----------
    store : str or ExperienceStore, optional
        The experience store (its URL, or an open store). Defaults to the default store
        (:func:`automl_meta.store.default_url`).
    task : (X, y), dict or TaskDescription, optional
        The dataset being tuned, or its meta-features. ``X`` may be a DataFrame with categorical or text
        columns and missing values (described as :func:`automl_meta.corpus.make_preprocessor` encodes
        it). The task type is read from ``y``; for a regression target of few integer values, pass
        ``TaskDescription.from_data(X, y, task_type="regression")``. Without a task there is nothing to
        compare, and every parameter goes to ``base_sampler``.
    base_sampler : BaseSampler, optional
        Samples what the store knows nothing about. Defaults to ``TPESampler(seed=seed)``.
    seed : int, optional
        Seed of the sampler's random numbers (and of the default base sampler).
    n_neighbors : int, default 10
        How many similar past tasks the transfer phase trusts before the study's own trials show which
        past tasks behave like the new one. The portfolio gives them half its weight, by similarity, and
        spreads the other half evenly over every past task it reads.
    n_portfolio : int, default 5
        How many first trials come from the portfolio of past tasks' best configurations.
    prior_weight : float, default 2.0
        How many of the study's own trials the similarity of the past tasks counts as when the transfer
        phase weighs them: after ``n`` own trials, the similarities make up ``prior_weight /
        (prior_weight + n)`` of each weight and how well the task orders the study's trials the rest.
    n_candidates : int, default 512
        Steps around the study's best trial scored per trial in the transfer phase.
    n_transfer : int, default 100
        How many trials after the portfolio the transfer phase proposes; later trials go to
        ``base_sampler``, which sees every earlier trial. By then the study's own trials say more about
        the new task than past tasks do, and the base sampler's cost per trial grows more slowly.
    exclude_tasks : sequence of str, default ()
        Fingerprints or names of stored tasks to ignore (for leave-one-task-out evaluations).
    knowledge : "bundled", path, KnowledgeBase or None, default "bundled"
        Past tasks besides the store's: the knowledge file shipped with the package
        (:mod:`automl_meta.knowledge`: scikit-learn's estimators in the spaces of
        :mod:`automl_meta.spaces`, tuned on real datasets), another knowledge file (the path of its
        ``knowledge-<version>.json``), or None for the store alone. The file's parameter names meet the
        study's by name, also inside a Pipeline (``step__name``); where the study's ranges differ, stored
        configurations outside them are left out. A file that is missing or damaged gives a warning, and
        the sampler goes on with the store alone. The store's own results join the file's (same
        parameter names), so the user's experience adds to it; :class:`ExperienceRecorder` writes to the
        store only.

    Notes
    -----
    Like Optuna's samplers, the constructor only stores its arguments. The first call from a study
    (``before_trial`` of its first trial) checks them, opens the store and describes the task (for
    ``(X, y)``, its meta-features, which include 3-fold cross-validated landmarkers); so a bad argument, a
    store that cannot be opened (:class:`~automl_meta.exceptions.StoreError`) or data that cannot be
    described (:class:`~automl_meta.exceptions.TaskError`) raise from ``study.optimize`` or ``study.ask``.
    The past tasks' fitted processes belong to the store object (the 256 most recently used are kept), so
    samplers given the same :class:`~automl_meta.store.ExperienceStore` reuse them. A sampler pickles with
    its arguments, described task and random state; what it derived from the store is derived again.

    Examples
    --------
    >>> import tempfile, os, optuna
    >>> from sklearn.datasets import load_iris, load_wine
    >>> from automl_meta.integrations.optuna import ExperienceRecorder, MetaLearnedSampler
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "experience.db")
    >>> objective = lambda t: (t.suggest_float("x", -5, 5) - 2) ** 2
    >>> past = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    >>> recorder = ExperienceRecorder(store=url, task=load_wine(return_X_y=True))
    >>> past.optimize(objective, n_trials=30, callbacks=[recorder])
    >>> sampler = MetaLearnedSampler(store=url, task=load_iris(return_X_y=True), seed=0)
    >>> study = optuna.create_study(sampler=sampler)
    >>> study.optimize(objective, n_trials=1)
    >>> study.best_value < 0.5  # the first trial is the best configuration of the nearest past task
    True
    """

    def __init__(
        self,
        *,
        store: str | ExperienceStore | None = None,
        task: TaskLike = None,
        base_sampler: BaseSampler | None = None,
        seed: int | None = None,
        n_neighbors: int = 10,
        n_portfolio: int = 5,
        prior_weight: float = 2.0,
        n_candidates: int = 512,
        n_transfer: int = 100,
        exclude_tasks: Sequence[str] = (),
        knowledge: KnowledgeLike = "bundled",
    ) -> None:
        self._store_arg = store
        self._task_arg = task
        self._base = base_sampler if base_sampler is not None else TPESampler(seed=seed)
        self._seed = seed
        self._rng: np.random.RandomState | None = None  # made on first use, unless reseeded before
        self._n_neighbors = n_neighbors
        self._n_portfolio = n_portfolio
        self._prior_weight = prior_weight
        self._n_candidates = n_candidates
        self._n_transfer = n_transfer
        self._exclude: Collection[str] = exclude_tasks
        self._knowledge_arg = knowledge
        self._bundled: KnowledgeBase | None = None
        self._prepared = False
        self._store: ExperienceStore | None = None
        self._task: TaskDescription | None = None
        self._logged: set[str] = set()
        self._reset()

    def _reset(self) -> None:
        """Empty the state derived from the store and the study (at construction and after unpickling)."""
        self._setup_lock = threading.Lock()
        self._lock = threading.Lock()
        self._intersection = IntersectionSearchSpace(include_pruned=True)
        self._knowledge: dict[str, _Knowledge] = {}  # per Pipeline prefix of the study's parameters
        self._models_cache: dict[tuple, tuple[_Encoding, list[_SourceModel]]] = {}
        self._trial_space: dict[tuple[str, int], _Slot] = {}
        self._portfolio = _Portfolio(self._n_portfolio)  # checked with the other arguments before any use

    def _prepare(self) -> None:
        """Check the arguments, open the store and describe the task: once, on the first call that needs them."""
        if self._prepared:
            return
        with self._setup_lock:
            if self._prepared:
                return
            _check_arguments(
                self._n_neighbors, self._n_portfolio, self._prior_weight, self._n_candidates, self._n_transfer
            )
            self._store = _as_store(self._store_arg)
            self._task = _as_task(self._task_arg)
            self._bundled = resolve_knowledge(self._knowledge_arg)
            self._prior_weight = float(self._prior_weight)
            self._exclude = set(self._exclude)
            if self._rng is None:
                self._rng = np.random.RandomState(self._seed)
            self._prepared = True

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for derived in (
            "_setup_lock",
            "_lock",
            "_intersection",
            "_knowledge",
            "_models_cache",
            "_trial_space",
            "_portfolio",
            "_bundled",
        ):
            del state[derived]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bundled = resolve_knowledge(self._knowledge_arg) if self._prepared else None
        self._reset()

    def __str__(self) -> str:
        return f"MetaLearnedSampler(base_sampler={type(self._base).__name__})"

    # -- what the store knows ------------------------------------------------------------------------
    def _log_once(self, key: str, message: str) -> None:
        if key not in self._logged:
            self._logged.add(key)
            _logger.warning(message)

    def _load(self, study_name: str | None, prefix: str) -> _Knowledge:
        """Per search space: its distributions and the past tasks' observations (read on the first trial).

        The knowledge file's parameter names get ``prefix``, the Pipeline step of the study's parameters."""
        with self._lock:
            if prefix in self._knowledge:
                return self._knowledge[prefix]
            self._knowledge[prefix] = []
            if self._task is None:
                self._log_once(
                    "no-task",
                    "MetaLearnedSampler has no task to compare with past tasks; every "
                    f"parameter goes to the base sampler {type(self._base).__name__}.",
                )
                return self._knowledge[prefix]
            assert self._store is not None
            knowledge = load_knowledge(
                self._store,
                self._task,
                exclude=self._exclude,
                n_neighbors=self._n_neighbors,
                study_name=study_name,
                bundled=self._bundled,
                prefix=prefix,
            )
            if knowledge is None:
                self._log_once(
                    "empty",
                    "The experience store has no completed single-objective trials to learn from (and no "
                    f"knowledge file is used); MetaLearnedSampler behaves like its base sampler "
                    f"{type(self._base).__name__}.",
                )
                return self._knowledge[prefix]
            self._knowledge[prefix] = knowledge
            return knowledge

    def _entry(self, slot: _Slot) -> tuple[dict[str, BaseDistribution], list]:
        return self._knowledge[slot[0]][slot[1]]

    def _match(self, study: Study, trial: FrozenTrial, query: Mapping[str, BaseDistribution]) -> _Slot | None:
        """The stored search space this trial draws on (chosen once per trial), or None."""
        self._prepare()
        if len(study.directions) != 1:
            self._log_once(
                "multi",
                "MetaLearnedSampler uses the store for single-objective studies only; this "
                f"multi-objective study uses the base sampler {type(self._base).__name__}.",
            )
            return None
        prefix = prefix_of(query)
        knowledge = self._load(study.study_name, prefix)
        key = (study.study_name, trial.number)
        if key in self._trial_space:
            return self._trial_space[key]
        best = match_space(knowledge, query)
        if best is None:
            if knowledge:
                self._log_once(
                    "unseen:" + ",".join(sorted(query)),
                    f"The experience store has never seen parameters {sorted(query)}; they go to the "
                    f"base sampler {type(self._base).__name__}.",
                )
            return None
        self._trial_space[key] = (prefix, best)
        return prefix, best

    def _known(self, slot: _Slot, name: str, d: BaseDistribution) -> bool:
        space = self._entry(slot)[0]
        return name in space and _kind(space[name]) == _kind(d)

    def _models(self, slot: _Slot, space: Mapping[str, BaseDistribution]) -> tuple[_Encoding, list[_SourceModel]]:
        """Every past task's surrogate over ``space`` (fitted once per stored space and query space)."""
        key = (slot, tuple((n, repr(d)) for n, d in space.items()))
        with self._lock:
            if key in self._models_cache:
                return self._models_cache[key]
        encoding = _Encoding(space)
        # The knowledge file's processes outlive any one store: they are cached with the file.
        owner = self._bundled if self._bundled is not None else self._store
        models = source_models(encoding, self._entry(slot)[1], processes_of(owner))
        with self._lock:
            self._models_cache[key] = (encoding, models)
        return encoding, models

    # -- the two phases --------------------------------------------------------------------------------
    def _portfolio_value(self, study: Study, trial: FrozenTrial, slot: _Slot, name: str, d: BaseDistribution) -> Any:
        """The portfolio's value of parameter ``name`` for this trial, or None (after the portfolio, or none fits)."""
        space = study_ranges(study, unconditional(*self._entry(slot)))
        pool_key = (slot, tuple((n, repr(x)) for n, x in space.items()))
        sources = self._entry(slot)[1]
        config = self._portfolio.config(study, trial, pool_key, sources, lambda: self._models(slot, space))
        return _clip(d, config[name]) if config is not None and name in config else None

    def _transfer(self, study: Study, slot: _Slot, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
        """The transfer phase's configuration of the parameters ``space`` (:func:`._transfer.transfer`)."""
        encoding, models = self._models(slot, space)
        if not models:
            return {}
        assert self._rng is not None
        return transfer(
            study, encoding, models, self._rng, n_candidates=self._n_candidates, prior_weight=self._prior_weight
        )

    def _handed_over(self, trial: FrozenTrial) -> bool:
        """Whether this trial comes after the transfer phase, so the base sampler alone proposes it."""
        self._prepare()
        return trial.number >= self._n_portfolio + self._n_transfer

    # -- the BaseSampler contract ----------------------------------------------------------------------
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._handed_over(trial):
            return self._base.infer_relative_search_space(study, trial)
        space = {n: d for n, d in self._intersection.calculate(study).items() if not d.single()}
        if space and self._match(study, trial, space) is not None:
            return space
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        slot = None if self._handed_over(trial) else self._match(study, trial, search_space)
        if slot is None:  # exactly the base sampler's behaviour (including its start-up phase)
            return self._base.sample_relative(study, trial, search_space)
        known = {n: d for n, d in search_space.items() if self._known(slot, n, d)}
        params: dict[str, Any] = {}
        if trial.number < self._n_portfolio:
            for n, d in known.items():
                value = self._portfolio_value(study, trial, slot, n, d)
                if value is not None:
                    params[n] = value
        if not params and known:
            params = self._transfer(study, slot, known)
        for n, d in search_space.items():  # every parameter of the relative space gets a value
            if n not in params:
                params[n] = self._base.sample_independent(study, trial, n, d)
        return params

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        slot = None if self._handed_over(trial) else self._match(study, trial, {param_name: param_distribution})
        if slot is not None and self._known(slot, param_name, param_distribution):
            value = self._portfolio_value(study, trial, slot, param_name, param_distribution)
            if value is not None:
                return value
        elif slot is not None:
            self._log_once(
                f"param:{param_name}",
                f"The experience store has no history for parameter "
                f"{param_name!r}; it goes to the base sampler {type(self._base).__name__}.",
            )
        return self._base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._prepare()
        self._base.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._trial_space.pop((study.study_name, trial.number), None)
        self._portfolio.forget(study, trial)
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._rng = np.random.RandomState()  # like RandomState.seed() without a seed: fresh OS entropy
        self._base.reseed_rng()
