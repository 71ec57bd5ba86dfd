"""The zero-shot portfolio: the first trials are past tasks' best configurations, adapted to the study's results.

The candidates are the few best configurations of every past task. Each pick is the candidate that most
lowers the past tasks' weighted best regret so far (:func:`_greedy`), where a task's regret at a candidate
is measured or predicted (:func:`_regret_table`); half the weight goes to the nearest tasks by similarity,
half evenly to every task read (``_HEDGE``). From the study's second result on, a neighbour
that orders the study's results the wrong way loses weight. While other workers may be choosing at the same
time, the order before any result is handed out by trial number instead, so that workers never collide.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, cast

import numpy as np
from optuna.storages import InMemoryStorage
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ._knowledge import _Source
from ._search_space import _Encoding
from ._transfer import _SourceModel, discordance, expected_minimum

_POOL_PER_TASK = 5  # best configurations of each past task that the portfolio may propose
_REGRET_SPREAD = 0.03  # how far a new task's normalised regret may stray from a similar task's
# Share of the portfolio's weight spread evenly over all past tasks of the pool, not only the nearest: a hedge
# for a new task unlike its nearest neighbours in the way its best configurations lie.
_HEDGE = 0.5
# How fast a neighbour that orders the study's results the wrong way loses weight: after m results, by
# exp(-_AGREEMENT * m * share of discordant pairs). Gentle, as one pair of a noisy objective's results may
# be ordered by its noise.
_AGREEMENT = 1.0

_Pool = tuple[list[dict[str, Any]], np.ndarray, np.ndarray]  # candidates, their unit vectors, their regret table
_TrialKey = tuple[str, int]  # (study name, trial number)


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


def _greedy(
    table: np.ndarray, weights: np.ndarray, reached: np.ndarray, k: int, excluded: Sequence[int] = ()
) -> list[int]:
    """Up to ``k`` candidates, each lowering the weighted expected best regret the most given the earlier.

    In expectation: the new task's regret is taken to spread around a neighbour's by ``_REGRET_SPREAD``,
    so that once a neighbour is covered, more of its good configurations still count.
    """
    chosen: list[int] = []
    reached = reached.copy()
    for _ in range(min(k, len(table) - len(excluded))):
        cost = expected_minimum(reached[None, :], table, _REGRET_SPREAD) @ weights
        cost[list(excluded) + chosen] = np.inf
        pick = int(np.argmin(cost))
        chosen.append(pick)
        reached = np.minimum(reached, table[pick])
    return chosen


def _candidates(encoding: _Encoding, models: list[_SourceModel], sources: list[_Source]) -> _Pool:
    """The portfolio's candidates (the best few configurations of every past task that lie in the study's
    ranges) and their regret table."""
    configs: list[dict[str, Any]] = []
    units: list[np.ndarray] = []
    seen: set[bytes] = set()
    for source in sources:
        taken = 0
        for i in np.argsort(source.values, kind="stable"):
            if taken == _POOL_PER_TASK:
                break
            u = encoding.unit(source.configs[i])  # None outside the study's ranges: the next best then
            if u is None:
                continue
            taken += 1
            if u.tobytes() not in seen:
                seen.add(u.tobytes())
                configs.append(source.configs[i])
                units.append(u)
    U = np.stack(units) if units else np.zeros((0, len(encoding.names)))
    table = _regret_table(encoding, models, U) if units and models else np.zeros((0, 0))
    return configs, U, table


def _on_shared_storage(study: Study) -> bool:
    """Whether workers of other processes may be choosing for this study now, unseen: any storage but memory.

    Optuna has no public way to tell a study's storage, so this reads the private ``Study._storage``, here only.
    """
    return not isinstance(study._storage, InMemoryStorage)


def _reweighted(
    encoding: _Encoding, models: list[_SourceModel], prior: np.ndarray, own_u: list[np.ndarray], own_y: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours' weights given the study's results (``exp(-_AGREEMENT * m * share of discordant pairs)``
    after m results, from the second on), and the best regret those results reached on each neighbour."""
    weights, reached = prior, np.full(len(models), np.inf)
    if own_u:
        rows = _regret_table(encoding, models, np.stack(own_u))
        reached = rows.min(0)
        if len(own_y) >= 2:
            y = np.array(own_y)
            pairs = max(int((y[:, None] < y[None, :]).sum()), 1)
            wrong = discordance(rows, y).sum((0, 1)) / pairs
            weights = (prior + 1e-4) * np.exp(-_AGREEMENT * len(y) * wrong)
            weights /= weights.sum()
    return weights, reached


class _Portfolio:
    """One sampler's portfolio: its candidates per stored space, and the configuration each trial was given.

    Parameters
    ----------
    size : int
        How many first trials (by trial number) come from the portfolio.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._pick_lock = threading.Lock()  # threads of one process must not pick the same configuration
        self._pools: dict[Hashable, _Pool] = {}
        self._given: dict[_TrialKey, dict[str, Any]] = {}

    def config(
        self,
        study: Study,
        trial: FrozenTrial,
        index: Hashable,
        sources: list[_Source],
        models: Callable[[], tuple[_Encoding, list[_SourceModel]]],
    ) -> dict[str, Any] | None:
        """The configuration for this trial from the portfolio of stored space ``index`` (chosen once per
        trial), or None after the portfolio. ``models()`` gives the space's encoding and surrogates."""
        if trial.number >= self.size:
            return None
        key = (study.study_name, trial.number)
        with self._lock:
            if key in self._given:
                return self._given[key]
            pool = self._pools.get(index)
        if pool is None:
            pool = _candidates(*models(), sources)
            with self._lock:
                self._pools[index] = pool
        if not pool[0] or pool[2].size == 0:
            return None
        with self._pick_lock:
            return self._pick(study, trial, *models(), pool)

    def forget(self, study: Study, trial: FrozenTrial) -> None:
        """Drop the configuration given to a finished trial."""
        with self._lock:
            self._given.pop((study.study_name, trial.number), None)

    def _pick(
        self, study: Study, trial: FrozenTrial, encoding: _Encoding, models: list[_SourceModel], pool: _Pool
    ) -> dict[str, Any] | None:
        configs, cand, table = pool
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        own_u, own_y, used, parallel = [], [], set(), _on_shared_storage(study)
        for t in study.get_trials(deepcopy=False):
            parallel |= t.state == TrialState.RUNNING and t.number != trial.number
            u = encoding.unit(t.params)
            if u is None:
                continue
            used.add(u.tobytes())
            # cast: t.values is not None, so t.value is a float
            if t.state == TrialState.COMPLETE and t.values is not None and math.isfinite(cast(float, t.value)):
                own_u.append(u)
                own_y.append(sign * cast(float, t.value))
        with self._lock:
            used |= {u.tobytes() for c in self._given.values() if (u := encoding.unit(c)) is not None}
        prior = (1.0 - _HEDGE) * np.array([m.weight for m in models]) + _HEDGE / len(models)
        if parallel:
            # Hand out the order before any result by trial number, which every worker computes alike, so that
            # no two trials get the same configuration.
            order = _greedy(table, prior, np.full(len(models), np.inf), self.size)
            free = [i for i in order[trial.number :] if cand[i].tobytes() not in used]
            choice = free[0] if free else None
        else:
            weights, reached = _reweighted(encoding, models, prior, own_u, own_y)
            excluded = [i for i, u in enumerate(cand) if u.tobytes() in used]
            order = _greedy(table, weights, reached, 1, excluded)
            choice = order[0] if order else None
        if choice is None:
            return None
        with self._lock:
            self._given[(study.study_name, trial.number)] = configs[choice]
        return configs[choice]
