"""Optuna: a sampler that warm-starts a study from similar past tasks, and a callback that remembers every trial.

:class:`MetaLearnedSampler` reads an experience store (:class:`automl_meta.store.ExperienceStore`):

1. **Portfolio.** The first ``n_portfolio`` trials are configurations that did best on past tasks (the
   few best of every stored task). Each pick is the one that most lowers the best normalised regret
   reached so far on the ``n_neighbors`` most similar past tasks, weighted by similarity (the distance
   between standardised meta-features, :func:`automl_meta.metafeatures.describe`), so the portfolio
   covers several neighbours. Where a neighbour never ran a configuration, its regret there is what a
   Gaussian process fitted to that neighbour predicts; a neighbour's own best few configurations, which
   are among its best partly by luck, count at the mean of their measured and predicted regret there.
   From the study's second result on, neighbours that order the study's own results the wrong way lose
   weight, so the portfolio follows the neighbours that behave like the new task. On a database
   storage, which worker processes may share, and while other threads run trials, the portfolio is
   handed out by trial number in the similarity-only order instead, so parallel workers get different
   configurations.
2. **Transfer.** Later trials take the configuration of lowest optimistic predicted loss (a lower
   confidence bound) among small steps around the study's best trial, never one the study has already
   run. The prediction is a ranking-weighted ensemble of Gaussian processes: one per past task (fitted
   to Gaussian-copula scores of its losses, so that tasks on different scales share one scale, with a
   length scale per parameter) and one fitted to the study's own trials. The weights start as the
   similarities of the neighbours and move, as the study's trials accumulate, to how well each process
   orders them, so any past task that behaves like the new one can earn weight.
3. **Fallback.** Parameters the store has no history for, multi-objective studies and studies without a
   task or with an empty store go to ``base_sampler`` (TPE by default), with a log line saying so; with an
   empty store the sampler behaves like its base sampler.

:class:`ExperienceRecorder` is a study callback that records every finished trial (complete, pruned or
failed) in the store, so that knowledge grows with every study; the store ignores a trial it already has.
A store that fails never stops the study: the trial waits in a local spool and is written later.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.search_space import IntersectionSearchSpace
from optuna.storages import InMemoryStorage
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState
from scipy.special import ndtr

from automl_meta.metafeatures import NAMES, as_vector
from automl_meta.store import ExperienceStore, Spool, TaskDescription, TrialRecord, record_or_spool, study_key
from automl_meta.store.records import METAFEATURES_ATTR

from automl_meta.integrations._transfer import (GaussianProcess, copula, discordance, expected_minimum,
                                                fitted_process, ranking_weights)

__all__ = ["MetaLearnedSampler", "ExperienceRecorder", "METAFEATURES_ATTR"]

_logger = logging.getLogger(__name__)

# The version of the sampling behaviour. Bump it by hand whenever MetaLearnedSampler (or the processes of
# ``_transfer``) would propose other configurations for the same store, task and seed: the warm-start benchmark
# keys its kept results by it, and runs again only the cases of another version.
_SAMPLER_VERSION = "217fa7b16753a16e"


TaskLike = Any  # (X, y), a dict of meta-features, a TaskDescription, or None


def _as_store(store: str | ExperienceStore | None) -> ExperienceStore:
    return store if isinstance(store, ExperienceStore) else ExperienceStore(store)


def _as_task(task: TaskLike) -> TaskDescription | None:
    if task is None or isinstance(task, TaskDescription):
        return task
    if isinstance(task, Mapping):
        return TaskDescription.from_metafeatures(task)
    if isinstance(task, (tuple, list)) and len(task) == 2:
        return TaskDescription.from_data(*task)
    raise TypeError("task must be (X, y), a dict of meta-features from automl_meta.metafeatures.describe, a "
                    f"TaskDescription or None; got {type(task).__name__}.")


# -- encoding parameters in the unit cube ------------------------------------------------------------------
def _kind(d: BaseDistribution) -> str:
    return "cat" if isinstance(d, CategoricalDistribution) else ("int" if isinstance(d, IntDistribution) else "float")


def _contains(d: BaseDistribution, value: Any) -> bool:
    try:
        return bool(d._contains(d.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def _to_unit(d: BaseDistribution, value: Any) -> float:
    if isinstance(d, CategoricalDistribution):
        return float(d.to_internal_repr(value))
    lo, hi, v = float(d.low), float(d.high), float(value)
    if d.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return 0.5 if hi == lo else min(max((v - lo) / (hi - lo), 0.0), 1.0)


def _from_unit(d: BaseDistribution, u: float) -> Any:
    if isinstance(d, CategoricalDistribution):
        return d.choices[int(u)]
    lo, hi = float(d.low), float(d.high)
    u = min(max(float(u), 0.0), 1.0)
    v = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if d.log else lo + u * (hi - lo)
    step = d.step
    if isinstance(d, IntDistribution):
        step = step or 1
        v = int(d.low + round((v - d.low) / step) * step)
        return int(min(max(v, d.low), d.high))
    if step is not None:
        v = d.low + round((v - d.low) / step) * step
    return float(min(max(v, d.low), d.high))


@dataclass
class _Source:
    """Past observations of one neighbour task in one stored search space."""

    weight: float  # similarity to the new task; the weights of a space's sources sum to 1
    configs: list[dict[str, Any]]
    values: np.ndarray  # losses (maximised objectives negated): lower is better


class _Encoding:
    """Configurations of a search space as points of the unit cube.

    A configuration's *unit vector* holds one entry per parameter: numbers mapped to [0, 1] (on the log
    scale where the distribution is logarithmic), categories by index. Its *features*, what the surrogates
    see, replace each category index by a one-hot block scaled so that two categories are as far apart as
    the two ends of a numerical range.
    """

    def __init__(self, space: Mapping[str, BaseDistribution]) -> None:
        self.names = list(space)
        self.dists = [space[n] for n in self.names]
        self.cat = np.array([isinstance(d, CategoricalDistribution) for d in self.dists])
        self.sizes = np.array([len(d.choices) if isinstance(d, CategoricalDistribution) else 0 for d in self.dists])

    def unit(self, config: Mapping[str, Any]) -> np.ndarray | None:
        """The unit vector of ``config``, or None when it lacks a parameter or lies outside the space."""
        if not all(n in config and _contains(d, config[n]) for n, d in zip(self.names, self.dists)):
            return None
        return np.array([_to_unit(d, config[n]) for n, d in zip(self.names, self.dists)])

    def features(self, U: np.ndarray) -> np.ndarray:
        U = np.atleast_2d(U)
        blocks = []
        for j, (is_cat, size) in enumerate(zip(self.cat, self.sizes)):
            if is_cat:
                blocks.append(np.eye(size)[U[:, j].astype(int)] / math.sqrt(2.0))
            else:
                blocks.append(U[:, j:j + 1])
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(U), 0))

    def decode(self, u: np.ndarray) -> dict[str, Any]:
        return {n: _from_unit(d, u[j]) for j, (n, d) in enumerate(zip(self.names, self.dists))}

    def snap(self, U: np.ndarray) -> np.ndarray:
        """The unit vectors of the configurations ``U`` decodes to (integers, steps and categories rounded)."""
        snapped = [self.unit(self.decode(u)) for u in U]
        return np.stack([u if s is None else s for u, s in zip(U, snapped)])

    def uniform(self, rng: np.random.RandomState, n: int) -> np.ndarray:
        U = rng.uniform(size=(n, len(self.names)))
        U[:, self.cat] = np.floor(U[:, self.cat] * self.sizes[self.cat])
        return U

    def perturb(self, rng: np.random.RandomState, centres: np.ndarray, scale: float | np.ndarray) -> np.ndarray:
        """Gaussian steps around ``centres`` (reflected at the cube's faces); categories change with p = 0.2."""
        U = centres + rng.normal(scale=scale, size=centres.shape)
        U = np.abs(U)
        U = np.clip(np.where(U > 1, 2 - U, U), 0.0, 1.0)
        flip = rng.uniform(size=centres.shape) < 0.2
        other = self.uniform(rng, len(centres))
        U[:, self.cat] = np.where(flip[:, self.cat], other[:, self.cat], centres[:, self.cat])
        return U


@dataclass
class _SourceModel:
    """A past task's surrogate in one encoding: a process over its copula scores, and its loss quantiles."""

    weight: float
    gp: GaussianProcess
    U: np.ndarray  # its evaluated configurations, as unit vectors
    regret: np.ndarray  # their normalised regret on that task, (loss - best) / (worst - best)

    def predicted_regret(self, features: np.ndarray) -> np.ndarray:
        """The normalised regret a configuration is predicted to reach: the quantile of the predicted score."""
        return np.quantile(self.regret, np.clip(ndtr(self.gp.mean(features)), 0.0, 1.0))


_TRUST_STEPS = (0.02, 0.05, 0.1)  # step sizes of the transfer phase's candidates, in the unit cube
_CONFIDENCE = 2.0  # standard deviations of the study's own process an unexplored step is credited with
_POOL_PER_TASK = 5  # best configurations of each past task that the portfolio may propose
_REGRET_SPREAD = 0.03  # how far a new task's normalised regret may stray from a similar task's


class MetaLearnedSampler(BaseSampler):
    """Warm-start a study from the experience store: a portfolio from similar tasks, then transfer, then TPE.

    See the module's description for how each phase works.

    Parameters
    ----------
    store : str or ExperienceStore, optional
        The experience store (its URL, or an open store). Defaults to the default store
        (:func:`automl_meta.store.default_url`).
    task : (X, y), dict or TaskDescription, optional
        The dataset being tuned, or its meta-features. Without a task there is nothing to compare, and
        every parameter goes to ``base_sampler``.
    base_sampler : BaseSampler, optional
        Samples what the store knows nothing about. Defaults to ``TPESampler(seed=seed)``.
    seed : int, optional
        Seed of the sampler's random numbers (and of the default base sampler).
    n_neighbors : int, default 10
        How many similar past tasks the portfolio covers and the transfer phase trusts before the study's
        own trials show which past tasks behave like the new one.
    n_portfolio : int, default 5
        How many first trials come from the portfolio of past tasks' best configurations.
    prior_weight : float, default 2.0
        How many of the study's own trials the similarity of the past tasks counts as when the transfer
        phase weighs them: after ``n`` own trials, the similarities make up ``prior_weight /
        (prior_weight + n)`` of each weight and how well the task orders the study's trials the rest.
    n_candidates : int, default 512
        Steps around the study's best trial scored per trial in the transfer phase.
    exclude_tasks : sequence of str, default ()
        Fingerprints or names of stored tasks to ignore (for leave-one-task-out evaluations).

    Examples
    --------
    >>> import tempfile, os, optuna
    >>> from sklearn.datasets import load_iris, load_wine
    >>> from automl_meta.integrations.optuna import ExperienceRecorder, MetaLearnedSampler
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "experience.db")
    >>> objective = lambda t: (t.suggest_float("x", -5, 5) - 2) ** 2
    >>> past = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    >>> past.optimize(objective, n_trials=30, callbacks=[ExperienceRecorder(store=url, task=load_wine(return_X_y=True))])
    >>> sampler = MetaLearnedSampler(store=url, task=load_iris(return_X_y=True), seed=0)
    >>> study = optuna.create_study(sampler=sampler)
    >>> study.optimize(objective, n_trials=1)
    >>> study.best_value < 0.5  # the first trial is the best configuration of the nearest past task
    True
    """

    def __init__(self, *, store: str | ExperienceStore | None = None, task: TaskLike = None,
                 base_sampler: BaseSampler | None = None, seed: int | None = None, n_neighbors: int = 10,
                 n_portfolio: int = 5, prior_weight: float = 2.0, n_candidates: int = 512,
                 exclude_tasks: Sequence[str] = ()) -> None:
        for name, value in (("n_neighbors", n_neighbors), ("n_candidates", n_candidates)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        if isinstance(n_portfolio, bool) or not isinstance(n_portfolio, int) or n_portfolio < 0:
            raise ValueError(f"n_portfolio must be an integer >= 0, got {n_portfolio!r}.")
        if not (isinstance(prior_weight, (int, float)) and not isinstance(prior_weight, bool) and prior_weight >= 0):
            raise ValueError(f"prior_weight must be a number >= 0, got {prior_weight!r}.")
        self._store = _as_store(store)
        self._task = _as_task(task)
        self._base = base_sampler if base_sampler is not None else TPESampler(seed=seed)
        self._rng = np.random.RandomState(seed)
        self._n_neighbors = n_neighbors
        self._n_portfolio = n_portfolio
        self._prior_weight = float(prior_weight)
        self._n_candidates = n_candidates
        self._exclude = set(exclude_tasks)
        self._intersection = IntersectionSearchSpace(include_pruned=True)
        self._lock = threading.Lock()
        self._pick_lock = threading.Lock()
        self._knowledge: list[tuple[dict[str, BaseDistribution], list[_Source]]] | None = None
        self._models_cache: dict[tuple, tuple[_Encoding, list[_SourceModel]]] = {}
        self._portfolios: dict[int, tuple[list[dict[str, Any]], np.ndarray, np.ndarray]] = {}
        self._trial_config: dict[int, dict[str, Any]] = {}
        self._trial_space: dict[int, int] = {}
        self._logged: set[str] = set()

    def __str__(self) -> str:
        return f"MetaLearnedSampler(base_sampler={type(self._base).__name__})"

    # -- what the store knows ------------------------------------------------------------------------
    def _log_once(self, key: str, message: str) -> None:
        if key not in self._logged:
            self._logged.add(key)
            _logger.warning(message)

    def _load(self, study_name: str | None = None) -> list[tuple[dict[str, BaseDistribution], list[_Source]]]:
        """Per stored search space: its distributions and the nearest tasks' observations.

        Loaded once, on the first trial; the running study's own recorded trials are left out (they are the
        study's own observations, not past knowledge).
        """
        with self._lock:
            if self._knowledge is not None:
                return self._knowledge
            self._knowledge = []
            if self._task is None:
                self._log_once("no-task", "MetaLearnedSampler has no task to compare with past tasks; every "
                               f"parameter goes to the base sampler {type(self._base).__name__}.")
                return self._knowledge
            tasks = [t for t in self._store.tasks() if t.fingerprint not in self._exclude and t.name not in
                     self._exclude and all(k in t.metafeatures for k in NAMES)]
            evaluations = self._store.evaluations([t.id for t in tasks], states=["COMPLETE"]) if tasks else []
            by_space: dict[int, dict[int, list]] = {}
            spaces: dict[int, dict[str, BaseDistribution]] = {}
            for e in evaluations:
                if e.values is None or len(e.values) != 1 or not math.isfinite(e.values[0]) \
                        or e.study == study_name:
                    continue
                sign = -1.0 if e.directions and e.directions[0].upper().endswith("MAXIMIZE") else 1.0
                by_space.setdefault(e.search_space_id, {}).setdefault(e.task_id, []).append(
                    (e.params, sign * e.values[0]))
                spaces[e.search_space_id] = e.distributions
            if not by_space:
                self._log_once("empty", "The experience store has no completed single-objective trials to learn "
                               f"from; MetaLearnedSampler behaves like its base sampler {type(self._base).__name__}.")
                return self._knowledge
            features = {t.id: as_vector(t.metafeatures) for t in tasks}
            all_f = np.stack(list(features.values()) + [as_vector(self._task.metafeatures)])
            scale = all_f.std(0)
            scale[scale == 0] = 1.0
            mine = as_vector(self._task.metafeatures) / scale
            for space_id, per_task in sorted(by_space.items()):
                ids = [i for i in per_task if len(per_task[i]) >= 2]
                if not ids:
                    continue
                dist = np.array([np.linalg.norm(features[i] / scale - mine) for i in ids])
                order = np.argsort(dist, kind="stable")
                near = order[: self._n_neighbors]
                tau = max(float(np.median(dist[near])), 1e-6)
                weights = np.where(np.isin(order, near), np.exp(-dist[order] / tau), 0.0)
                weights /= weights.sum()
                # Every task is kept for its best configurations; only the neighbours carry weight.
                sources = [_Source(float(w), [p for p, _ in per_task[ids[j]]],
                                   np.array([v for _, v in per_task[ids[j]]])) for w, j in zip(weights, order)]
                self._knowledge.append((spaces[space_id], sources))
            return self._knowledge

    def _match(self, study: Study, trial: FrozenTrial, query: Mapping[str, BaseDistribution]) -> int | None:
        """The stored search space this trial draws on (chosen once per trial), or None."""
        if len(study.directions) != 1:
            self._log_once("multi", "MetaLearnedSampler uses the store for single-objective studies only; this "
                           f"multi-objective study uses the base sampler {type(self._base).__name__}.")
            return None
        knowledge = self._load(study.study_name)
        if trial._trial_id in self._trial_space:
            return self._trial_space[trial._trial_id]
        best, best_key = None, (0, 0, 0)
        for index, (space, sources) in enumerate(knowledge):
            overlap = sum(1 for n, d in query.items() if n in space and _kind(space[n]) == _kind(d))
            exact = sum(1 for n, d in query.items() if space.get(n) == d)
            key = (overlap, exact, sum(len(s.configs) for s in sources))
            if overlap and key > best_key:
                best, best_key = index, key
        if best is None:
            if knowledge:
                self._log_once("unseen:" + ",".join(sorted(query)),
                               f"The experience store has never seen parameters {sorted(query)}; they go to the "
                               f"base sampler {type(self._base).__name__}.")
            return None
        self._trial_space[trial._trial_id] = best
        return best

    def _known(self, index: int, name: str, d: BaseDistribution) -> bool:
        space = self._load()[index][0]
        return name in space and _kind(space[name]) == _kind(d)

    def _models(self, index: int, space: Mapping[str, BaseDistribution]) -> tuple[_Encoding, list[_SourceModel]]:
        """Every past task's surrogate over ``space`` (fitted once per stored space and query space)."""
        key = (index, tuple((n, repr(d)) for n, d in space.items()))
        with self._lock:
            if key in self._models_cache:
                return self._models_cache[key]
        encoding = _Encoding(space)
        models = []
        for source in self._load()[index][1]:  # every stored task: the study's results may vouch for any
            rows = [(u, v) for c, v in zip(source.configs, source.values) if (u := encoding.unit(c)) is not None]
            if len(rows) < 2:
                continue
            U, v = np.stack([u for u, _ in rows]), np.array([v for _, v in rows])
            spread = float(v.max() - v.min())
            regret = (v - v.min()) / spread if spread > 0 else np.zeros_like(v)
            # A length scale per parameter: past tasks have enough trials to tell which parameters matter.
            gp = fitted_process(encoding.features(U), copula(v), per_dimension=True)
            models.append(_SourceModel(source.weight, gp, U, regret))
        total = sum(m.weight for m in models)
        for m in models:  # when no neighbour ran this space's parameters, every past task counts alike
            m.weight = m.weight / total if total > 0 else 1.0 / len(models)
        with self._lock:
            self._models_cache[key] = (encoding, models)
        return encoding, models

    # -- zero-shot portfolio, adapted to the study's own results ----------------------------------------
    @staticmethod
    def _regret_table(encoding: _Encoding, models: list[_SourceModel], U: np.ndarray) -> np.ndarray:
        """Regret of configurations ``U`` on each neighbour: measured where it ran them, else predicted.

        A neighbour's own best few configurations are among its best partly by luck (a task's loss is
        rough at small scales), so their measured regret there is too low: the winner's curse. For them,
        the table holds the mean of the measured and the predicted (smooth) regret.
        """
        features = encoding.features(U)
        table = np.empty((len(U), len(models)))
        for t, m in enumerate(models):
            same = (U[:, None, :] == m.U[None, :, :]).all(2)
            measured = np.where(same, m.regret[None, :], np.inf).min(1)
            predicted = m.predicted_regret(features)
            won = same[:, np.argsort(m.regret, kind="stable")[:_POOL_PER_TASK]].any(1)
            measured = np.where(won, 0.5 * (measured + predicted), measured)
            table[:, t] = np.where(np.isfinite(measured), measured, predicted)
        return table

    def _pool(self, index: int) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
        """The portfolio's candidates (the best few configurations of every past task) and their regret table."""
        with self._lock:
            if index in self._portfolios:
                return self._portfolios[index]
        space, sources = self._load()[index]
        encoding, models = self._models(index, space)
        configs: list[dict[str, Any]] = []
        units: list[np.ndarray] = []
        seen: set[bytes] = set()
        for source in sources:
            for i in np.argsort(source.values, kind="stable")[:_POOL_PER_TASK]:
                u = encoding.unit(source.configs[i])
                if u is not None and u.tobytes() not in seen:
                    seen.add(u.tobytes())
                    configs.append(source.configs[i])
                    units.append(u)
        U = np.stack(units) if units else np.zeros((0, len(encoding.names)))
        table = self._regret_table(encoding, models, U) if units and models else np.zeros((0, 0))
        with self._lock:
            self._portfolios[index] = (configs, U, table)
        return configs, U, table

    def _portfolio_config(self, study: Study, trial: FrozenTrial, index: int) -> dict[str, Any] | None:
        """The portfolio's configuration for this trial (chosen once per trial), or None after the portfolio.

        Greedy: the candidate that most lowers the neighbours' weighted best regret so far (in expectation,
        with the new task's regret spread around a neighbour's by ``_REGRET_SPREAD``, so that once a neighbour
        is covered, more of its good configurations still count). The weights
        start as the neighbours' similarities; from the study's second result on, a neighbour that orders
        the study's results the wrong way loses weight (by ``exp(-4 * m * share of discordant pairs)``
        after m results), so the portfolio follows the neighbours that behave like the new task.
        """
        if trial.number >= self._n_portfolio:
            return None
        with self._lock:
            if trial._trial_id in self._trial_config:
                return self._trial_config[trial._trial_id]
        configs, cand, table = self._pool(index)
        if not configs or table.size == 0:
            return None
        with self._pick_lock:  # threads of one process must not pick the same configuration
            return self._pick(study, trial, index, configs, cand, table)

    def _pick(self, study: Study, trial: FrozenTrial, index: int, configs: list[dict[str, Any]], cand: np.ndarray,
              table: np.ndarray) -> dict[str, Any] | None:
        space = self._load()[index][0]
        encoding, models = self._models(index, space)
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        # Workers of other processes (on a database storage) may be choosing now, unseen.
        own_u, own_y, used, parallel = [], [], set(), not isinstance(study._storage, InMemoryStorage)
        for t in study.get_trials(deepcopy=False):
            parallel |= t.state == TrialState.RUNNING and t._trial_id != trial._trial_id
            u = encoding.unit(t.params)
            if u is None:
                continue
            used.add(u.tobytes())
            if t.state == TrialState.COMPLETE and t.values is not None and math.isfinite(t.value):
                own_u.append(u)
                own_y.append(sign * t.value)
        with self._lock:
            used |= {u.tobytes() for c in self._trial_config.values() if (u := encoding.unit(c)) is not None}
        prior = np.array([m.weight for m in models])
        if parallel:
            # Hand out the similarity-only order by trial number, which every worker computes alike, so that
            # no two trials get the same configuration.
            order = self._greedy(table, prior, np.full(len(models), np.inf), self._n_portfolio)
            free = [i for i in order[trial.number:] if cand[i].tobytes() not in used]
            choice = free[0] if free else None
        else:
            weights, reached = prior, np.full(len(models), np.inf)
            if own_u:
                rows = self._regret_table(encoding, models, np.stack(own_u))
                reached = rows.min(0)
                if len(own_y) >= 2:
                    y = np.array(own_y)
                    pairs = max(int((y[:, None] < y[None, :]).sum()), 1)
                    wrong = discordance(rows, y).sum((0, 1)) / pairs
                    weights = (prior + 1e-4) * np.exp(-4.0 * len(y) * wrong)
                    weights /= weights.sum()
            excluded = [i for i, u in enumerate(cand) if u.tobytes() in used]
            order = self._greedy(table, weights, reached, 1, excluded)
            choice = order[0] if order else None
        if choice is None:
            return None
        config = configs[choice]
        with self._lock:
            self._trial_config[trial._trial_id] = config
        return config

    @staticmethod
    def _greedy(table: np.ndarray, weights: np.ndarray, reached: np.ndarray, k: int,
                excluded: Sequence[int] = ()) -> list[int]:
        """Up to ``k`` candidates, each lowering the weighted expected best regret the most given the earlier."""
        chosen: list[int] = []
        reached = reached.copy()
        for _ in range(min(k, len(table) - len(excluded))):
            cost = expected_minimum(reached[None, :], table, _REGRET_SPREAD) @ weights
            cost[list(excluded) + chosen] = np.inf
            pick = int(np.argmin(cost))
            chosen.append(pick)
            reached = np.minimum(reached, table[pick])
        return chosen

    def _portfolio_value(self, study: Study, trial: FrozenTrial, index: int, name: str,
                         d: BaseDistribution) -> Any:
        config = self._portfolio_config(study, trial, index)
        if config is not None and name in config and _contains(d, config[name]):
            value = config[name]
            if isinstance(d, IntDistribution):
                return int(value)
            return float(value) if isinstance(d, FloatDistribution) else value
        return None

    # -- transfer: steps around the best trial, judged by the past tasks' surrogates and the study's own ------
    def _transfer(self, study: Study, index: int, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
        """The candidate of lowest optimistic predicted loss, among steps around the study's best trial.

        The prediction is a weighted ensemble of surrogates: one per past task of the space and one fitted
        to the study's own trials. The weights start as the similarities of the ``n_neighbors`` nearest
        tasks and move, as the study's own trials accumulate (``prior_weight`` of them count as much as the
        similarities), to how well each surrogate orders those trials, so a task outside the neighbours can
        earn weight. Candidates are small steps around the best trial (a trust region: the portfolio
        has already chosen the region, and the ensemble knows the landscape better than the study's few
        trials do), never a configuration the study has already run. Each is credited with
        ``_CONFIDENCE`` standard deviations of the study's own process (a lower confidence bound), so that
        steps into directions the study has not tried beat tiny moves next to the best trial.
        """
        encoding, models = self._models(index, space)
        if not models:
            return {}
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        own, units = [], []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            u = encoding.unit(t.params) if t.values is not None and math.isfinite(t.value) else None
            if u is not None:
                own.append(sign * t.value)
                units.append(u)
        prior = np.array([m.weight for m in models] + [0.0])
        k = self._n_candidates
        if not own:  # no result yet (no portfolio): around the neighbours' best configurations
            tops = np.concatenate([m.U[np.argsort(m.regret, kind="stable")[:3]] for m in models if m.weight > 0])
            cand = np.concatenate([tops, encoding.perturb(self._rng, tops[self._rng.randint(len(tops), size=k)],
                                                          0.05)])
            features = encoding.features(cand)
            mean = sum(m.weight * m.gp.mean(features) for m in models if m.weight > 0)
            return encoding.decode(cand[int(np.argmin(mean))])
        y = copula(np.array(own))
        Uo = np.stack(units)
        Fo = encoding.features(Uo)
        target = GaussianProcess(Fo, y)
        weights = prior
        if len(y) >= 3:
            at_own = np.stack([m.gp.mean(Fo) for m in models])
            ranked = ranking_weights(at_own, target.loo_mean(), y, self._rng)
            a = self._prior_weight / (self._prior_weight + len(y))
            weights = a * prior + (1 - a) * ranked
        centres = np.repeat(Uo[np.argmin(y)][None, :], k, axis=0)
        scales = np.array(_TRUST_STEPS)[self._rng.randint(len(_TRUST_STEPS), size=(k, 1))]
        cand = encoding.snap(encoding.perturb(self._rng, centres, scales))
        done = {u.tobytes() for u in Uo}
        fresh = np.array([u.tobytes() not in done for u in cand])
        if fresh.any():
            cand = cand[fresh]
        features = encoding.features(cand)
        own_mean, own_std = target.predict(features)
        bound = weights[-1] * own_mean - _CONFIDENCE * own_std
        for m, w in zip(models, weights[:-1]):
            if w > 1e-3:  # the rest cannot change the choice much; predicting for them is most of the cost
                bound = bound + w * m.gp.mean(features)
        return encoding.decode(cand[int(np.argmin(bound))])

    # -- the BaseSampler contract ----------------------------------------------------------------------
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        space = {n: d for n, d in self._intersection.calculate(study).items() if not d.single()}
        if space and self._match(study, trial, space) is not None:
            return space
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        index = self._match(study, trial, search_space)
        known = {} if index is None else {n: d for n, d in search_space.items() if self._known(index, n, d)}
        if index is None:  # exactly the base sampler's behaviour (including its start-up phase)
            return self._base.sample_relative(study, trial, search_space)
        params: dict[str, Any] = {}
        if trial.number < self._n_portfolio:
            for n, d in known.items():
                value = self._portfolio_value(study, trial, index, n, d)
                if value is not None:
                    params[n] = value
        if not params and known:
            params = self._transfer(study, index, known)  # type: ignore[arg-type]
        for n, d in search_space.items():  # every parameter of the relative space gets a value
            if n not in params:
                params[n] = self._base.sample_independent(study, trial, n, d)
        return params

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        index = self._match(study, trial, {param_name: param_distribution})
        if index is not None and self._known(index, param_name, param_distribution):
            value = self._portfolio_value(study, trial, index, param_name, param_distribution)
            if value is not None:
                return value
        elif index is not None:
            self._log_once(f"param:{param_name}", f"The experience store has no history for parameter "
                           f"{param_name!r}; it goes to the base sampler {type(self._base).__name__}.")
        return self._base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._trial_space.pop(trial._trial_id, None)
        with self._lock:
            self._trial_config.pop(trial._trial_id, None)
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._base.reseed_rng()


class ExperienceRecorder:
    """A study callback that records every finished trial in the experience store.

    Recording never stops tuning: when the store cannot take a trial (server down or dropped, read-only or
    deleted SQLite file, ...), a warning says which trial was not recorded and why, and the trial waits in a
    local spool (:class:`automl_meta.store.Spool`) that the next successful record writes first.

    Parameters
    ----------
    store : str or ExperienceStore, optional
        Where to record (defaults to the default store).
    task : (X, y), dict or TaskDescription
        The dataset the study tunes for (or its meta-features). Its meta-features are also saved in the
        study's user attributes (``automl_meta_metafeatures``), so ``automl-meta store import-optuna``
        can identify the task later.
    strict : bool
        Raise the store's error (a :class:`~automl_meta.exceptions.StoreError`) instead of spooling.
    spool_dir : path, optional
        Folder of the spool file (default ``$AUTOML_META_SPOOL_DIR``, else the user data directory).
    max_spooled : int
        At most this many trials wait in the spool; beyond it the oldest are dropped with a warning.

    Notes
    -----
    Trials are stored by study key and trial number (:func:`automl_meta.store.study_key`, kept in the
    study's user attribute ``automl_meta_study_key``), so two studies of the same name never mix, parallel
    workers of one study agree, and ``import-optuna`` of a recorded study adds nothing.

    Examples
    --------
    >>> import tempfile, os, optuna
    >>> from sklearn.datasets import load_iris
    >>> from automl_meta.integrations.optuna import ExperienceRecorder
    >>> from automl_meta.store import ExperienceStore
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> store = ExperienceStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "experience.db"))
    >>> study = optuna.create_study()
    >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5,
    ...                callbacks=[ExperienceRecorder(store=store, task=load_iris(return_X_y=True))])
    >>> store.count_evaluations(study=study.study_name)
    5
    """

    def __init__(self, *, store: str | ExperienceStore | None = None, task: TaskLike, strict: bool = False,
                 spool_dir: str | os.PathLike | None = None, max_spooled: int = 10_000) -> None:
        self._store = _as_store(store)
        description = _as_task(task)
        if description is None:
            raise ValueError("ExperienceRecorder needs the task the study tunes for: (X, y) or its meta-features.")
        self._task = description
        self._strict = bool(strict)
        self._spool = Spool(self._store.url, directory=spool_dir, max_rows=max_spooled)
        self._lock = threading.Lock()
        self._keys: weakref.WeakKeyDictionary[Study, str] = weakref.WeakKeyDictionary()

    @property
    def store(self) -> ExperienceStore:
        return self._store

    @property
    def spool(self) -> Spool:
        """Where trials wait while the store cannot take them."""
        return self._spool

    def flush(self) -> int:
        """Write the trials waiting in the spool to the store now; returns how many were written."""
        return self._spool.flush(self._store)

    def _study_key(self, study: Study) -> str:
        with self._lock:  # one Study object per optimize() call; keyed by object, so same-named studies differ
            key = self._keys.get(study)
            if key is None:
                if METAFEATURES_ATTR not in study.user_attrs:
                    study.set_user_attr(METAFEATURES_ATTR, self._task.metafeatures)
                key = self._keys[study] = study_key(study, write=True)
            return key

    def __call__(self, study: Study, trial: FrozenTrial) -> None:
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            return
        try:
            key = self._study_key(study)
        except Exception as exc:  # noqa: BLE001 - the Optuna storage failed; tuning goes on regardless
            if self._strict:
                raise
            _logger.warning("Trial %d of study %r was not recorded in the store: its study attributes could not be "
                            "read or written in the Optuna storage (%s).", trial.number, study.study_name, exc)
            return
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        record = TrialRecord(self._task, trial.distributions, trial.params, trial.values,
                             [d.name for d in study.directions], trial.state.name, study.study_name, key,
                             trial.number, duration)
        record_or_spool(self._store, self._spool, record, strict=self._strict)
