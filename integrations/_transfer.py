"""Surrogates that carry past tasks' observations over to a new study.

Every past task gets a Gaussian process fitted to its observations after a Gaussian-copula transform (each
task's losses replaced by the normal quantiles of their ranks), so tasks whose losses live on different
scales share one scale. A new study combines them with a process fitted to its own observations, weighted
by how well each one orders the study's own results (a ranking-weighted ensemble, as in Feurer et al., 2018,
"Scalable meta-learning for Bayesian optimization"). Configurations are points of the unit cube, as encoded
by the sampler; categorical parameters are one-hot blocks.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.special import ndtr, ndtri
from scipy.stats import rankdata

# Length scales (in the unit cube, per sqrt(dimension)) and noise variances tried for each process; the pair
# with the highest marginal likelihood is kept. A grid keeps fitting a few Cholesky factorisations long.
_LENGTH_SCALES = (0.1, 0.2, 0.35, 0.6, 1.0)
_NOISES = (1e-3, 0.03, 0.3)


def copula(values: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks of ``values`` (ties share a rank): a scale-free, outlier-proof target."""
    v = np.asarray(values, dtype=float)
    return ndtri((rankdata(v) - 0.5) / len(v))


def _distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of A and B (through one matrix product)."""
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
    return np.sqrt(np.maximum(d2, 0.0))


def _matern52(A: np.ndarray, B: np.ndarray, length: float, distances: np.ndarray | None = None) -> np.ndarray:
    d = (_distances(A, B) if distances is None else distances) * (math.sqrt(5.0) / length)
    return (1.0 + d + d * d / 3.0) * np.exp(-d)


class GaussianProcess:
    """A zero-mean, unit-variance Matérn-5/2 process with an isotropic length scale chosen by evidence.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Points in the unit cube.
    y : ndarray of shape (n,)
        Standardised targets (for example :func:`copula` scores).
    """

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X = np.asarray(X, dtype=float)
        self.y = np.asarray(y, dtype=float)
        scale = math.sqrt(max(self.X.shape[1], 1))
        best = None
        distances = _distances(self.X, self.X)
        for length in _LENGTH_SCALES:
            K0 = _matern52(self.X, self.X, length * scale, distances)
            for noise in _NOISES:
                try:
                    L = np.linalg.cholesky(K0 + noise * np.eye(len(self.y)))
                except np.linalg.LinAlgError:
                    continue
                alpha = cho_solve((L, True), self.y)
                evidence = -0.5 * self.y @ alpha - np.log(np.diag(L)).sum()
                if best is None or evidence > best[0]:
                    best = (evidence, length * scale, noise, L, alpha)
        assert best is not None  # the largest noise always factorises
        _, self.length, self.noise, self._L, self._alpha = best

    def mean(self, Xq: np.ndarray) -> np.ndarray:
        """Posterior mean at ``Xq``."""
        return _matern52(np.asarray(Xq, dtype=float), self.X, self.length) @ self._alpha

    def predict(self, Xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation at ``Xq``."""
        Ks = _matern52(np.asarray(Xq, dtype=float), self.X, self.length)
        v = solve_triangular(self._L, Ks.T, lower=True, check_finite=False)
        return Ks @ self._alpha, np.sqrt(np.maximum(1.0 - (v * v).sum(0), 1e-12))

    def loo_mean(self) -> np.ndarray:
        """Leave-one-out posterior means at the training points (closed form)."""
        Kinv = cho_solve((self._L, True), np.eye(len(self.y)), check_finite=False)
        return self.y - self._alpha / np.diag(Kinv)


def discordance(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The pairs (i, j) with y_i < y_j that ``pred`` orders the other way (or ties).

    ``pred`` is (n,) for one model, giving an (n, n) matrix, or (n, models), giving (n, n, models).
    """
    pred = np.asarray(pred)
    less = (y[:, None] < y[None, :]).reshape(len(y), len(y), *([1] * (pred.ndim - 1)))
    return less & (pred[:, None] >= pred[None, :])


def ranking_weights(source_preds: np.ndarray, target_loo: np.ndarray | None, y: np.ndarray,
                    rng: np.random.RandomState, n_bootstrap: int = 100) -> np.ndarray:
    """Weights of the sources (rows of ``source_preds``) and of the target (last entry).

    Each weight is the share of bootstrap resamples of the study's observations in which that model makes
    the fewest ordering mistakes (ties split). Sources that order worse than the target in most resamples
    get no weight, so unrelated tasks cannot drown the study's own evidence.
    """
    preds = list(source_preds) + ([target_loo] if target_loo is not None else [])
    D = np.stack([discordance(p, y) for p in preds]).astype(float)  # (models, n, n)
    n = len(y)
    idx = rng.randint(0, n, size=(n_bootstrap, n))
    # losses[b, m] = mistakes of model m on the pairs of resample b
    losses = np.stack([D[:, i][:, :, i].sum((1, 2)) for i in idx])
    best = losses == losses.min(1, keepdims=True)
    weights = (best / best.sum(1, keepdims=True)).mean(0)
    if target_loo is not None:
        worse = (losses[:, :-1] > losses[:, -1:]).mean(0) > 0.95
        weights[:-1][worse] = 0.0
        if weights.sum() == 0:
            weights[-1] = 1.0
    return weights / weights.sum() if weights.sum() > 0 else np.full(len(preds), 1.0 / len(preds))


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float | np.ndarray) -> np.ndarray:
    """Expected improvement below ``best`` of a normal prediction (minimisation)."""
    std = np.maximum(std, 1e-9)
    u = (best - mean) / std
    return std * (u * ndtr(u) + np.exp(-0.5 * u * u) / math.sqrt(2 * math.pi))


def expected_minimum(reached: np.ndarray, mean: np.ndarray, spread: float) -> np.ndarray:
    """E[min(reached, X)] for X ~ N(mean, spread^2): what one more try is worth against the best so far.

    ``reached`` may be infinite (nothing tried yet): the value is then the mean itself.
    """
    reached, mean = np.broadcast_arrays(np.asarray(reached, dtype=float), np.asarray(mean, dtype=float))
    if spread <= 0:
        return np.minimum(reached, mean)
    finite = np.where(np.isfinite(reached), reached, 0.0)
    gain = expected_improvement(mean, np.full(mean.shape, float(spread)), finite)  # E[max(reached - X, 0)]
    return np.where(np.isfinite(reached), finite - gain, mean)
