"""Cross-validated choice of the adaptation steps for the scikit-learn estimators (private)."""

from __future__ import annotations

import numpy as np

from automl_meta.engine import Params
from automl_meta.learners import Learner
from automl_meta.tasks import TaskBatch


def _adapt_path(learner: Learner, batch: TaskBatch, candidates: list[int]) -> dict[int, Params]:
    """Fast weights after each number of steps in ``candidates`` (ascending), along one trajectory.

    Within the meta-trained steps a fit is recomputed; beyond them it continues from the
    previous candidate, which is exactly what a fresh fit computes (those steps are safeguarded).
    """
    trained = learner.inner_steps
    path, params, at = {}, None, 0
    for steps in candidates:
        if steps <= trained or params is None:
            params, at = learner.adapt_batch(batch, min(steps, trained)), min(steps, trained)
        if steps > at:
            params, at = learner.adapt_batch(batch, steps - at, start=params), steps
        path[steps] = params
    return path


def _folds(
    X: np.ndarray, targets: np.ndarray, weight: np.ndarray, rng: np.random.RandomState, task_type: str
) -> list[np.ndarray] | None:
    """Test-row indices of up to 3 shuffled folds (stratified where every class allows).

    Identical rows share a fold, and the folds are drawn over the distinct rows in sorted order, not
    in order of appearance: a weight of 2 and a repeated row then split alike (weights are counts)
    however the rows are ordered, and a duplicate never sits on both sides of a split. None when
    there are too few rows.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    rows = np.flatnonzero(weight > 0)
    keys = np.column_stack([X[rows], targets[rows].reshape(len(rows), -1)])
    distinct, inverse = np.unique(keys, axis=0, return_inverse=True)
    group_of_row = inverse.ravel()
    n_groups = len(distinct)
    n_splits = min(3, n_groups // 2)
    if n_splits < 2:
        return None
    seed = int(rng.randint(np.iinfo(np.int32).max))
    groups = np.arange(n_groups)
    if task_type == "classification":
        labels = np.empty(n_groups, dtype=np.int64)
        labels[group_of_row] = targets[rows]
        counts = np.bincount(labels)
        if counts[counts > 0].min() >= n_splits:
            split = StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(groups, labels)
            return [rows[np.isin(group_of_row, test)] for _, test in split]
    split = KFold(n_splits, shuffle=True, random_state=seed).split(groups)
    return [rows[np.isin(group_of_row, test)] for _, test in split]
