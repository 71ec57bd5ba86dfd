"""An output code: classification with more classes than the model has outputs (private).

The artifact's model has ``out_features`` outputs (10 for the bundled one). With K > out_features
classes, each ensemble member gets its own sub-task: a random balanced partition of the K classes
into G = out_features groups (group sizes differ by at most one), and is adapted to predict the
group of each row; sub-tasks are members of one ``TaskBatch`` whose targets differ per member. There
are enough members that every pair of classes falls into different groups in at least
``_SEPARATIONS`` of them (and at least ``n_ensemble`` members).

Decoding combines the members' log-probabilities: the score of class k is the mean over members m
of ``log p_m(g_m(k)) - log |g_m(k)|`` (a group's probability shared evenly among its classes), and
the class probabilities are ``softmax(score / T)`` over the K classes. The mean of log-probabilities
is a product of experts: one member's confident "not this group" rules a class out. How confident
the product may be depends on how much the members' errors agree, so the temperature T is fitted
on held-out rows: the estimators' cross-validation folds (``_sklearn_cv``) adapt every member on
each fold's training rows, and T minimises the held-out log-loss, which makes ``predict_proba``
calibrated. Without folds (too few rows), T = 1, the members' geometric mean.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize_scalar

_SEPARATIONS = 4  # a pair of classes told apart by 4 members survives a member or two that err


def _output_code(
    n_classes: int, n_groups: int, rng: np.random.RandomState, n_members: int = 1, start: np.ndarray | None = None
) -> np.ndarray:
    """(n_codes, n_classes) the group of each class in each member's partition.

    Partitions are added to ``start`` (if given) until there are at least ``n_members`` and every
    pair of classes is separated in at least ``_SEPARATIONS`` of them.
    """
    codes = [] if start is None else list(start)
    separated = np.eye(n_classes, dtype=np.int64) * _SEPARATIONS  # a class needs no separating from itself
    for code in codes:
        separated += code[:, None] != code[None, :]
    while len(codes) < n_members or separated.min() < _SEPARATIONS:
        code = np.empty(n_classes, dtype=np.int64)
        code[rng.permutation(n_classes)] = np.arange(n_classes) % n_groups
        codes.append(code)
        separated += code[:, None] != code[None, :]
    return np.stack(codes)


def _class_scores(logits: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Scores (..., n, K) of the classes from members' group logits (..., M, n, G) and their code (M, K)."""
    log_group = _log_softmax(logits)
    n_members, n_classes = code.shape
    n_groups = logits.shape[-1]
    # The mean over members of log p_m(g_m(k)) as one product over the (member, group) axis.
    assign = (code[:, None, :] == np.arange(n_groups)[None, :, None]).astype(log_group.dtype) / n_members
    stacked = np.moveaxis(log_group, -3, -2).reshape(*log_group.shape[:-3], log_group.shape[-2], -1)
    sizes = np.stack([np.bincount(c, minlength=n_groups) for c in code])
    log_size = np.take_along_axis(np.log(sizes), code, axis=-1).mean(0)  # every class's group is non-empty
    return stacked @ assign.reshape(n_members * n_groups, n_classes) - log_size


def _log_softmax(x: np.ndarray) -> np.ndarray:
    """``log_softmax`` over the last axis, by torch's kernel (faster than scipy's on these arrays)."""
    return torch.log_softmax(torch.from_numpy(np.ascontiguousarray(x)), -1).numpy()


def _decode(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Class probabilities from class scores: ``softmax(scores / temperature)`` over the classes."""
    return np.exp(_log_softmax(scores / temperature))


def _fit_temperature(scores: np.ndarray, targets: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """The temperature of lowest weighted held-out log-loss, and that loss.

    ``scores`` (folds, n, K) are each fold's class scores on all rows; ``weight`` (folds, n) picks and
    weighs each fold's held-out rows.
    """
    rows = np.arange(scores.shape[1])

    def loss(log_t: float) -> float:
        nll = -_log_softmax(scores / np.exp(log_t))[:, rows, targets]
        return float((nll * weight).sum() / weight.sum())

    best = minimize_scalar(loss, bounds=(np.log(1e-3), np.log(1e2)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(best.x)), float(best.fun)
