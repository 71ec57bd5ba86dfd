"""Optuna: a sampler that warm-starts a study from similar past tasks, and a callback that remembers every trial.

:class:`MetaLearnedSampler` reads an experience store (:class:`automl_meta.store.ExperienceStore`):

1. **Zero-shot portfolio.** The first ``n_portfolio`` trials (by trial number, so parallel workers get
   different ones) are configurations that did best on the most similar past tasks. Similarity is the
   distance between standardised meta-features (:func:`automl_meta.metafeatures.describe`). The portfolio
   is chosen greedily so that it covers several neighbours: each pick is the configuration that most
   improves the best score reached so far on the neighbours, weighted by similarity.
2. **Transfer.** Later trials come from a Parzen-estimator sampler (as in TPE) whose "good" and "bad"
   densities hold the study's own completed trials and the neighbours' past trials; the past trials'
   total weight shrinks as ``prior_weight * 10 / (10 + n_own)``, so the study's own observations take over.
3. **Fallback.** Parameters the store has no history for, multi-objective studies and studies without a
   task or with an empty store go to ``base_sampler`` (TPE by default), with a log line saying so; with an
   empty store the sampler behaves like its base sampler.

:class:`ExperienceRecorder` is a study callback that records every finished trial (complete, pruned or
failed) in the store, so that knowledge grows with every study; the store ignores a trial it already has.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from automl_meta.metafeatures import NAMES, as_vector
from automl_meta.store import ExperienceStore, TaskDescription
from automl_meta.store.records import METAFEATURES_ATTR

__all__ = ["MetaLearnedSampler", "ExperienceRecorder", "METAFEATURES_ATTR"]

_logger = logging.getLogger(__name__)


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

    weight: float
    configs: list[dict[str, Any]]
    scores: np.ndarray  # rank-normalised, 0 = best, 1 = worst


def _rank01(values: Sequence[float]) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return np.zeros(1)
    order = np.argsort(np.argsort(v, kind="stable"), kind="stable")
    return order / (len(v) - 1)


class MetaLearnedSampler(BaseSampler):
    """Warm-start a study from the experience store: a portfolio from similar tasks, then transfer, then TPE.

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
    n_neighbors : int, default 5
        How many similar past tasks to learn from.
    n_portfolio : int, default 10
        How many first trials come from the zero-shot portfolio.
    prior_weight : float, default 10.0
        Total weight of the past observations in the transfer phase when the study has no trial of its own.
    n_candidates : int, default 32
        Candidates drawn per trial in the transfer phase.
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
                 base_sampler: BaseSampler | None = None, seed: int | None = None, n_neighbors: int = 5,
                 n_portfolio: int = 10, prior_weight: float = 10.0, n_candidates: int = 32,
                 exclude_tasks: Sequence[str] = ()) -> None:
        for name, value in (("n_neighbors", n_neighbors), ("n_candidates", n_candidates)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        if isinstance(n_portfolio, bool) or not isinstance(n_portfolio, int) or n_portfolio < 0:
            raise ValueError(f"n_portfolio must be an integer >= 0, got {n_portfolio!r}.")
        if not (isinstance(prior_weight, (int, float)) and prior_weight >= 0):
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
        self._knowledge: list[tuple[dict[str, BaseDistribution], list[_Source]]] | None = None
        self._portfolios: dict[int, list[dict[str, Any]]] = {}
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
        """Per stored search space: its distributions and the nearest tasks' normalised observations.

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
                order = np.argsort(dist, kind="stable")[: self._n_neighbors]
                tau = max(float(np.median(dist[order])), 1e-6)
                weights = np.exp(-dist[order] / tau)
                weights /= weights.sum()
                sources = []
                for w, j in zip(weights, order):
                    obs = per_task[ids[j]]
                    sources.append(_Source(float(w), [p for p, _ in obs], _rank01([v for _, v in obs])))
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

    # -- zero-shot portfolio -------------------------------------------------------------------------
    def _portfolio(self, index: int) -> list[dict[str, Any]]:
        with self._lock:
            if index in self._portfolios:
                return self._portfolios[index]
        space, sources = self._load()[index]
        names = sorted(space)

        def encode(config):
            return np.array([_to_unit(space[n], config[n]) if n in config and _contains(space[n], config[n])
                             else 0.5 for n in names])

        encoded = [np.stack([encode(c) for c in s.configs]) for s in sources]
        candidates, seen = [], set()
        for s in sources:
            for i in np.argsort(s.scores, kind="stable")[:3]:
                key = repr(sorted(s.configs[i].items()))
                if key not in seen:
                    seen.add(key)
                    candidates.append(s.configs[i])
        cand = np.stack([encode(c) for c in candidates])
        cat = np.array([isinstance(space[n], CategoricalDistribution) for n in names])
        # Score of every candidate on every neighbour: the score of the neighbour's closest evaluated config.
        table = np.empty((len(candidates), len(sources)))
        for t, (s, enc) in enumerate(zip(sources, encoded)):
            diff = np.abs(cand[:, None, :] - enc[None, :, :])
            diff[:, :, cat] = (diff[:, :, cat] > 0).astype(float)
            table[:, t] = s.scores[(diff ** 2).sum(2).argmin(1)]
        w = np.array([s.weight for s in sources])
        chosen: list[int] = []
        reached = np.ones(len(sources))
        for _ in range(min(self._n_portfolio, len(candidates))):
            gain = (w * (reached - np.minimum(reached, table))).sum(1)
            gain[chosen] = -np.inf
            mean = table @ w
            pick = max((i for i in range(len(candidates)) if i not in chosen), key=lambda i: (gain[i], -mean[i]))
            chosen.append(pick)
            reached = np.minimum(reached, table[pick])
        portfolio = [candidates[i] for i in chosen]
        with self._lock:
            self._portfolios[index] = portfolio
        return portfolio

    def _portfolio_value(self, index: int, trial: FrozenTrial, name: str, d: BaseDistribution) -> Any:
        if trial.number >= self._n_portfolio:
            return None
        portfolio = self._portfolio(index)
        if trial.number >= len(portfolio):
            return None
        config = portfolio[trial.number]
        if name in config and _contains(d, config[name]):
            value = config[name]
            if isinstance(d, IntDistribution):
                return int(value)
            return float(value) if isinstance(d, FloatDistribution) else value
        return None

    # -- transfer: Parzen estimators over own and past observations -------------------------------------
    def _transfer(self, study: Study, index: int, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
        names = list(space)
        dists = [space[n] for n in names]
        cat = np.array([isinstance(d, CategoricalDistribution) for d in dists])
        sizes = np.array([len(d.choices) if isinstance(d, CategoricalDistribution) else 0 for d in dists])
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        own = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
               if t.values is not None and math.isfinite(t.value) and all(n in t.params for n in names)
               and all(_contains(d, t.params[n]) for n, d in zip(names, dists))]
        points, scores, weights = [], [], []
        if own:
            points += [[_to_unit(d, t.params[n]) for n, d in zip(names, dists)] for t in own]
            scores += list(_rank01([sign * t.value for t in own]))
            weights += [1.0] * len(own)
        mass = self._prior_weight * 10.0 / (10.0 + len(own))
        for s in self._load()[index][1]:
            usable = [i for i, c in enumerate(s.configs) if all(n in c and _contains(d, c[n]) for n, d in
                                                                  zip(names, dists))]
            if not usable or mass == 0:
                continue
            points += [[_to_unit(d, s.configs[i][n]) for n, d in zip(names, dists)] for i in usable]
            sc = _rank01(s.scores[usable])
            scores += list(sc)
            weights += [mass * s.weight / len(usable)] * len(usable)
        X, u, w = np.array(points, dtype=float).reshape(-1, len(names)), np.array(scores), np.array(weights)
        good = u <= 0.25
        if len(X) == 0 or not good.any():
            return {}
        n_eff = max(w.sum(), 1.0)
        bw = float(np.clip(0.6 * n_eff ** (-1.0 / (len(names) + 4)), 0.05, 0.5))
        Xg, wg, Xb, wb = X[good], w[good], X[~good], w[~good]
        prior = 1.0  # weight of the uniform component in both densities

        # Candidates drawn from the "good" density: a kernel around a weighted pick, or uniform.
        probs = np.r_[wg, prior] / (wg.sum() + prior)
        centre = self._rng.choice(len(probs), size=self._n_candidates, p=probs)
        uniform = self._rng.uniform(size=(self._n_candidates, len(names)))
        cand = np.empty((self._n_candidates, len(names)))
        for k in range(self._n_candidates):
            if centre[k] == len(wg):
                cand[k] = uniform[k]
                cand[k, cat] = np.floor(uniform[k, cat] * sizes[cat])
                continue
            x = Xg[centre[k]] + self._rng.normal(scale=bw, size=len(names))
            x = np.abs(x)
            x = np.where(x > 1, 2 - x, x)
            flip = self._rng.uniform(size=len(names)) < 0.2
            x[cat] = np.where(flip[cat], np.floor(uniform[k, cat] * sizes[cat]), Xg[centre[k], cat])
            cand[k] = np.clip(x, 0, 1) if not cat.any() else np.where(cat, x, np.clip(x, 0, 1))

        def log_density(points_, weights_):
            if len(points_) == 0:
                return np.zeros(len(cand))
            diff = cand[:, None, :] - points_[None, :, :]
            cont = ~cat
            logk = -0.5 * (diff[:, :, cont] / bw) ** 2 - math.log(bw * math.sqrt(2 * math.pi))
            logk = logk.sum(2)
            if cat.any():
                same = diff[:, :, cat] == 0
                p_same, p_other = 0.8 + 0.2 / sizes[cat], 0.2 / sizes[cat]
                logk = logk + np.where(same, np.log(p_same), np.log(p_other)).sum(2)
            kern = np.exp(logk) @ weights_
            return np.log((kern + prior) / (weights_.sum() + prior))

        score = log_density(Xg, wg) - log_density(Xb, wb)
        best = cand[int(np.argmax(score))]
        return {n: _from_unit(d, best[i]) for i, (n, d) in enumerate(zip(names, dists))}

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
                value = self._portfolio_value(index, trial, n, d)
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
            value = self._portfolio_value(index, trial, param_name, param_distribution)
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
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._base.reseed_rng()


class ExperienceRecorder:
    """A study callback that records every finished trial in the experience store.

    Parameters
    ----------
    store : str or ExperienceStore, optional
        Where to record (defaults to the default store).
    task : (X, y), dict or TaskDescription
        The dataset the study tunes for (or its meta-features). Its meta-features are also saved in the
        study's user attributes (``automl_meta_metafeatures``), so ``automl-meta store import-optuna``
        can identify the task later.

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

    def __init__(self, *, store: str | ExperienceStore | None = None, task: TaskLike) -> None:
        self._store = _as_store(store)
        description = _as_task(task)
        if description is None:
            raise ValueError("ExperienceRecorder needs the task the study tunes for: (X, y) or its meta-features.")
        self._task = description
        self._task_id: int | None = None
        self._lock = threading.Lock()
        self._attr_done: set[int] = set()

    @property
    def store(self) -> ExperienceStore:
        return self._store

    def __call__(self, study: Study, trial: FrozenTrial) -> None:
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            return
        with self._lock:
            if self._task_id is None:
                self._task_id = self._store.add_task(self._task)
            if study._study_id not in self._attr_done:
                self._attr_done.add(study._study_id)
                if METAFEATURES_ATTR not in study.user_attrs:
                    study.set_user_attr(METAFEATURES_ATTR, self._task.metafeatures)
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        self._store.add_evaluation(self._task_id, trial.distributions, trial.params, trial.values,
                                   directions=[d.name for d in study.directions], state=trial.state.name,
                                   study=study.study_name, trial_number=trial.number, duration_seconds=duration)
