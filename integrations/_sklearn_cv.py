"""Cross-validated choice of the adaptation steps for the scikit-learn estimators (private)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from automl_meta.engine import Params, batched_adapt, functional_apply
from automl_meta.engine.inner_loop import Data
from automl_meta.learners import Learner
from automl_meta.tasks import TaskBatch


def _steps_from(learner: Learner, support: Data | list[Data], params: Params, done: int, steps: int) -> Params:
    """``steps`` more gradient steps of every task, ``done`` taken already (safeguarded past meta-training).

    ``support``: every task's support data, or mini-batches of it taken in turn (see :func:`~automl_meta.engine.adapt`).
    """
    kwargs = learner._engine_kwargs(steps)
    kwargs.update(initialize=None, safeguard_after=max(0, learner.inner_steps - done))
    with torch.no_grad():
        return batched_adapt(
            functional_apply(learner.model),
            params,
            learner.inner_rates(),
            support,
            params_batched=True,
            **kwargs,
        )


def _adapt_path(learner: Learner, batch: TaskBatch, candidates: list[int]) -> Iterator[tuple[int, Params]]:
    """``(steps, fast weights)`` after each step count in ``candidates`` (ascending), along one trajectory.

    With the base inner loop each candidate continues from the previous one: the meta-learned rates do
    not depend on the step, and only steps past the meta-trained ones are safeguarded. That is exactly
    what a fresh fit of that many steps computes unless a safeguarded step was refused: a safeguarded
    step's scale is kept within one call of the inner loop, so each continuation searches it afresh.
    A learner with its own inner loop (such as iMAML's proximal steps) refits each candidate within its
    meta-trained steps and continues beyond them with its own safeguarded steps. A generator, so that a
    caller may stop early.
    """
    own_loop = type(learner).adapt_batch is not Learner.adapt_batch
    trained = learner.inner_steps
    params, done = None, 0
    for steps in candidates:
        if params is None or (own_loop and steps <= trained):
            done = min(steps, trained) if own_loop else steps
            params = learner.adapt_batch(batch, done)
        if steps > done:
            more = steps - done
            params = (
                learner.adapt_batch(batch, more, start=params)
                if own_loop
                else _steps_from(learner, batch.support(), params, done, more)
            )
        done = steps
        yield steps, params


_PATIENCE = 2  # candidates without improvement before the search for the step count stops


def _stalled(losses: list[float]) -> bool:
    """Whether the last ``_PATIENCE`` held-out losses (in the order of the candidates) all failed to improve.

    >>> _stalled([1.0, 0.9, 0.95, 0.92]), _stalled([1.0, 0.9, 0.95, 0.85])
    (True, False)
    """
    if len(losses) <= _PATIENCE:
        return False
    best_before = min(losses[:-_PATIENCE])
    return all(not loss < best_before for loss in losses[-_PATIENCE:])


Scores = dict[int, tuple[float, dict[str, Any]]]  # steps -> (held-out loss, settings fitted on held-out rows)


def _select_steps(
    path: Iterable[tuple[int, Params]], score: Callable[[Params], tuple[float, dict[str, Any]]]
) -> tuple[int, Params, Scores]:
    """The step count of lowest held-out loss along ``path`` (ties: fewer steps), its weights and every score.

    The path stops once the losses have stalled (see ``_stalled``); only the best weights so far are kept.
    """
    scores: Scores = {}
    best, kept = -1, {}
    for steps, params in path:
        scores[steps] = score(params)
        if best < 0 or scores[steps][0] < scores[best][0]:
            best, kept = steps, params
        if _stalled([loss for loss, _ in scores.values()]):
            break
    return best, kept, scores


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
