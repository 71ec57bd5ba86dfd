"""Shrinking the classifier's probabilities toward the class prior, by held-out log-loss (private).

On a small or noisy table an adapted model can be confidently wrong, and a model that predicts only the
class frequencies then has the lower log-loss. The classifier therefore predicts
``(1 - a) * p_model + a * prior``, with ``prior`` the training rows' (weighted) class frequencies and the
weight ``a`` chosen from :data:`_PRIOR_WEIGHTS` by the held-out log-loss of the cross-validation folds
(or of the large-table path's validation sample) that already choose the step count. Each fold's
predictions are mixed with the class frequencies of that fold's own training rows, so that a held-out
row's label never informs its prediction. With a clear signal ``a`` is 0 and nothing changes; without
folds (too few rows) it is 0 too.
"""

from __future__ import annotations

import numpy as np
import torch

_PRIOR_WEIGHTS = np.linspace(0.0, 1.0, 21)  # 0, 0.05, ..., 1: finer steps would only fit the folds' noise


def _class_prior(targets: np.ndarray, weight: np.ndarray, n_classes: int) -> np.ndarray:
    """Weighted class frequencies (a weight of 2 counts as a repeated row)."""
    counts = np.bincount(targets, weights=weight, minlength=n_classes)
    return counts / counts.sum()


def _fit_prior_weight(
    proba: torch.Tensor, targets: np.ndarray, weight: torch.Tensor, fallback_prior: np.ndarray
) -> tuple[float, float]:
    """``(held-out log-loss, weight a)`` of the best mixture with the class prior; ties go to the smaller ``a``.

    ``proba`` (folds, n, classes): each fold's model on every row; ``weight`` (folds, n): each fold's
    held-out rows. A fold's prior comes from the rows the other folds hold out (its training rows); a
    validation sample without training rows among them uses ``fallback_prior``.

    >>> proba = torch.tensor([[[0.99, 0.01], [0.99, 0.01], [0.99, 0.01], [0.01, 0.99]]])
    >>> loss, a = _fit_prior_weight(proba, np.array([0, 1, 1, 0]), torch.ones(1, 4), np.array([0.5, 0.5]))
    >>> a  # a confidently wrong model: all weight on the prior
    1.0
    """
    w = weight.numpy()
    p = proba.numpy()
    n_classes = p.shape[-1]
    training = w.sum(0, keepdims=True) - w
    priors = np.stack(
        [_class_prior(targets, t, n_classes) if t.sum() > 0 else fallback_prior for t in training]
    )  # (folds, classes)
    picked_model = p[:, np.arange(len(targets)), targets]  # (folds, n)
    picked_prior = priors[:, targets]
    best = (np.inf, 0.0)
    for a in _PRIOR_WEIGHTS:
        picked = (1 - a) * picked_model + a * picked_prior
        loss = float((-np.log(np.clip(picked, 1e-15, None)) * w).sum() / w.sum())
        if loss < best[0]:
            best = (loss, float(a))
    return best
