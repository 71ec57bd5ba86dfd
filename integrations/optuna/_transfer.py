"""Surrogates that carry past tasks' observations over to a new study.

Every past task gets a Gaussian process fitted to its observations after a Gaussian-copula transform (each
task's losses replaced by the normal quantiles of their ranks), so tasks whose losses live on different
scales share one scale. A new study combines them with a process fitted to its own observations, weighted
by how well each one orders the study's own results (a ranking-weighted ensemble, as in Feurer et al., 2018,
"Scalable meta-learning for Bayesian optimization"). Configurations are points of the unit cube, as encoded
by the sampler; categorical parameters are one-hot blocks.
"""

from __future__ import annotations

import hashlib
import math
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.study import Study
from scipy.linalg import cho_solve, solve_triangular
from scipy.special import ndtr, ndtri
from scipy.stats import rankdata

from ._own import _kept, own_results
from ._search_space import _Encoding
from ._snapping import snap

# Length scales (in the unit cube, per sqrt(dimension)) and noise variances tried for each process; the pair
# with the highest marginal likelihood is kept. A grid keeps fitting a few Cholesky factorisations long.
_LENGTH_SCALES = (0.1, 0.2, 0.35, 0.6, 1.0)
_NOISES = (1e-3, 0.03, 0.3)
# Per-coordinate refinement: factors tried on one coordinate's length scale at a time, and rounds over them.
_FACTORS = (0.5, 2.0, 4.0)
_SWEEPS = 2


def copula(values: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks of ``values`` (ties share a rank): a scale-free, outlier-proof target."""
    v = np.asarray(values, dtype=float)
    return ndtri((rankdata(v) - 0.5) / len(v))


def _distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of A and B (through one matrix product)."""
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
    return np.sqrt(np.maximum(d2, 0.0))


def _matern52_unit(distances: np.ndarray) -> np.ndarray:
    """The Matérn-5/2 kernel of distances already divided by the length scale."""
    d = distances * math.sqrt(5.0)
    return (1.0 + d + d * d / 3.0) * np.exp(-d)


class GaussianProcess:
    """A zero-mean, unit-variance Matérn-5/2 process with length scales chosen by evidence.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Points in the unit cube.
    y : ndarray of shape (n,)
        Standardised targets (for example :func:`copula` scores).
    per_dimension : bool, default False
        One length scale per coordinate instead of one for all. Starting from the best common length
        scale, each coordinate's inverse length scale is multiplied by the factors of ``_FACTORS`` in turn,
        keeping a change while the marginal likelihood rises (``_SWEEPS`` rounds over the coordinates).
        Used only with more than four points per coordinate; with fewer, the evidence cannot tell the
        coordinates apart.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, *, per_dimension: bool = False) -> None:
        self.X = np.asarray(X, dtype=float)
        self.y = np.asarray(y, dtype=float)
        d = max(self.X.shape[1], 1)
        best = None
        distances = _distances(self.X, self.X)
        for length in _LENGTH_SCALES:
            for noise in _NOISES:
                fit = self._fit(distances / (length * math.sqrt(d)), noise)
                if fit is not None and (best is None or fit[0] > best[0]):
                    best = fit + (np.full(self.X.shape[1], 1.0 / (length * math.sqrt(d))), noise)
        assert best is not None  # the largest noise always factorises
        # best = (evidence, Cholesky factor, weights, inverse length scale per coordinate, noise)
        if per_dimension and len(self.y) > 4 * d:
            best = self._refine(best)
        _, self._L, self._alpha, self._inverse_length, self.noise = best

    def _fit(self, scaled_distances: np.ndarray, noise: float) -> tuple | None:
        K = _matern52_unit(scaled_distances) + noise * np.eye(len(self.y))
        try:
            L = np.linalg.cholesky(K)
        except np.linalg.LinAlgError:
            return None
        alpha = cho_solve((L, True), self.y)
        return -0.5 * self.y @ alpha - np.log(np.diag(L)).sum(), L, alpha

    def _refine(self, best: tuple) -> tuple:
        """Per-dimension length scales: coordinate steps on a grid of factors, kept while the evidence rises."""
        for _ in range(_SWEEPS):
            for j in range(self.X.shape[1]):
                for factor in _FACTORS:
                    inverse = best[3].copy()
                    inverse[j] *= factor
                    fit = self._fit(_distances(self.X * inverse, self.X * inverse), best[4])
                    if fit is not None and fit[0] > best[0] + 1e-6:
                        best = fit + (inverse, best[4])
        return best

    def _cross(self, Xq: np.ndarray) -> np.ndarray:
        return _matern52_unit(
            _distances(np.asarray(Xq, dtype=float) * self._inverse_length, self.X * self._inverse_length)
        )

    def mean(self, Xq: np.ndarray) -> np.ndarray:
        """Posterior mean at ``Xq``."""
        return self._cross(Xq) @ self._alpha

    def predict(self, Xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation at ``Xq``."""
        Ks = self._cross(Xq)
        v = solve_triangular(self._L, Ks.T, lower=True, check_finite=False)
        return Ks @ self._alpha, np.sqrt(np.maximum(1.0 - (v * v).sum(0), 1e-12))

    def loo_mean(self) -> np.ndarray:
        """Leave-one-out posterior means at the training points (closed form)."""
        Kinv = cho_solve((self._L, True), np.eye(len(self.y)), check_finite=False)
        return self.y - self._alpha / np.diag(Kinv)


class FittedProcesses:
    """Past tasks' processes, fitted once for the same data and reused: a bounded, thread-safe LRU cache.

    Every store object owns one (see :func:`processes_of`), so studies on one store (many studies in a
    session, a leave-one-task-out benchmark) do not refit the same past tasks for each study. A process
    is found by its data, so a hit is the very process a new fit would give.

    Parameters
    ----------
    max_size : int, default 256
        At most this many processes are kept; the least recently used beyond it are dropped.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.uniform(size=(10, 2)), rng.normal(size=10)
    >>> cache = FittedProcesses(max_size=2)
    >>> cache.fit(X, y) is cache.fit(X.copy(), y.copy()), len(cache)
    (True, 1)
    """

    def __init__(self, max_size: int = 256) -> None:
        self.max_size = max_size
        self._fitted: OrderedDict[bytes, GaussianProcess] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._fitted)

    def fit(self, X: np.ndarray, y: np.ndarray, *, per_dimension: bool = False) -> GaussianProcess:
        """``GaussianProcess(X, y, per_dimension=...)``, the cached one when these data were fitted before."""
        X = np.ascontiguousarray(X, dtype=float)
        y = np.ascontiguousarray(y, dtype=float)
        key = hashlib.sha1(b"%d %d %d|" % (*X.shape, per_dimension) + X.tobytes() + y.tobytes()).digest()
        with self._lock:
            if key in self._fitted:
                self._fitted.move_to_end(key)
                return self._fitted[key]
        gp = GaussianProcess(X, y, per_dimension=per_dimension)  # outside the lock: other threads go on
        with self._lock:
            self._fitted[key] = gp
            while len(self._fitted) > self.max_size:
                self._fitted.popitem(last=False)
        return gp


_OWNED: weakref.WeakKeyDictionary[Any, FittedProcesses] = weakref.WeakKeyDictionary()
_OWNED_LOCK = threading.Lock()


def processes_of(store: Any) -> FittedProcesses:
    """The cache of fitted processes that belongs to ``store`` (an ExperienceStore): made on first use, and
    dropped with the store object. Samplers given the same store object share it; a sampler given a URL
    opens a store, and so a cache, of its own."""
    with _OWNED_LOCK:
        cache = _OWNED.get(store)
        if cache is None:
            cache = _OWNED[store] = FittedProcesses()
        return cache


def discordance(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The pairs (i, j) with y_i < y_j that ``pred`` orders the other way (or ties).

    ``pred`` is (n,) for one model, giving an (n, n) matrix, or (n, models), giving (n, n, models).
    """
    pred = np.asarray(pred)
    less = (y[:, None] < y[None, :]).reshape(len(y), len(y), *([1] * (pred.ndim - 1)))
    return less & (pred[:, None] >= pred[None, :])


def ranking_weights(
    source_preds: np.ndarray,
    target_loo: np.ndarray | None,
    y: np.ndarray,
    rng: np.random.RandomState,
    n_bootstrap: int = 100,
) -> np.ndarray:
    """Weights of the sources (rows of ``source_preds``) and of the target (last entry).

    Each weight is the share of bootstrap resamples of the study's observations in which that model makes
    the fewest ordering mistakes (ties split). Sources that order worse than the target in most resamples
    get no weight, so unrelated tasks cannot drown the study's own evidence. For n observations it
    costs O(models * n^2 * n_bootstrap) time (matrix products) and O(models * n * (n + n_bootstrap)) memory.

    Examples
    --------
    >>> y = np.arange(6.0)
    >>> ranking_weights(np.stack([-y, y]), None, y, np.random.RandomState(0))  # the second orders y right
    array([0., 1.])
    """
    preds = list(source_preds) + ([target_loo] if target_loo is not None else [])
    P = np.stack(preds)
    n, models = len(y), len(preds)
    # losses[b, m] = mistakes of model m on the pairs of resample b = sum_ij counts[b, i] D[m, i, j] counts[b, j],
    # with D[m] the discordance of model m and counts[b, i] the times observation i is drawn in resample b.
    # Every partial sum is a whole number of at most n^2, so the products are exact in float32 up to n = 4096
    # (float64 above): the same losses as summing over the drawn pairs one resample at a time.
    dtype = np.float32 if n <= 4096 else np.float64
    D = ((y[:, None] < y[None, :]) & (P[:, :, None] >= P[:, None, :])).astype(dtype)  # (models, n, n)
    idx = rng.randint(0, n, size=(n_bootstrap, n))
    counts = np.zeros((n_bootstrap, n), dtype=dtype)
    np.add.at(counts, (np.arange(n_bootstrap)[:, None], idx), 1.0)
    # drawn_after[m, i, b] = sum_j D[m, i, j] counts[b, j]
    drawn_after = (D.reshape(models * n, n) @ counts.T).reshape(models, n, n_bootstrap)
    # In C order like the stacked rows it replaces: the sums over resamples below depend on the memory layout.
    losses = np.einsum("mib,bi->bm", drawn_after, counts).astype(float, order="C")
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


# -- the transfer phase: steps around the best trial, judged by the past tasks' processes and the study's own --
_TRUST_STEPS = (0.02, 0.05, 0.1)  # step sizes of the transfer phase's candidates, in the unit cube
_CONFIDENCE = 2.0  # standard deviations of the study's own process an unexplored step is credited with
# A step nearer than this (unit cube) to a trial the study ran is nearly a repeat: it is left out while any
# candidate is farther. Without it, steps pile up next to a best trial at the edge of the range.
_MIN_STEP = 0.02


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


def _near_neighbours_best(
    encoding: _Encoding, models: list[_SourceModel], rng: np.random.RandomState, k: int
) -> dict[str, Any]:
    """Before any result (no portfolio): the best predicted among the neighbours' best and steps around them."""
    tops = np.concatenate([m.U[np.argsort(m.regret, kind="stable")[:3]] for m in models if m.weight > 0])
    cand = np.concatenate([tops, encoding.perturb(rng, tops[rng.randint(len(tops), size=k)], 0.05)])
    features = encoding.features(cand)
    mean = sum(m.weight * m.gp.mean(features) for m in models if m.weight > 0)
    return encoding.decode(cand[int(np.argmin(mean))])


def transfer(
    study: Study,
    encoding: _Encoding,
    models: list[_SourceModel],
    rng: np.random.RandomState,
    *,
    n_candidates: int,
    prior_weight: float,
) -> dict[str, Any]:
    """The candidate of lowest optimistic predicted loss, among steps around the study's best trial.

    The prediction is a weighted ensemble of surrogates: one per past task of the space (``models``) and
    one fitted to the study's own trials. The weights start as the similarities of the nearest tasks and
    move, as the study's own trials accumulate (``prior_weight`` of them count as much as the
    similarities), to how well each surrogate orders those trials, so a task outside the neighbours can
    earn weight. Candidates are ``n_candidates`` small steps around the best trial (a trust region: the
    portfolio has already chosen the region, and the ensemble knows the landscape better than the study's
    few trials do), never a configuration the study has already run, nor one within ``_MIN_STEP`` of one
    while any candidate is farther (so steps do not pile up next to a best trial at the edge of the
    range: each would be nearly a repeat). When two or more trials share the best loss, the region around
    the best is flat (an accuracy on a small dataset, a model so regularised that it predicts a constant),
    and half the candidates are drawn from the whole space instead. Each is credited with
    ``_CONFIDENCE`` standard deviations of the study's own process (a lower confidence bound), so that
    steps into directions the study has not tried beat tiny moves next to the best trial. The study's own
    process and the ranking see at most ``_OWN_RECENT + _OWN_BEST`` results (:func:`._own._kept`), and the
    trials' unit vectors are remembered (:func:`._own.own_results`), so that a trial's cost hardly grows with the study.
    """
    own, units = own_results(study, encoding)
    prior = np.array([m.weight for m in models] + [0.0])
    k = n_candidates
    if not own:
        return _near_neighbours_best(encoding, models, rng, k)
    losses = np.array(own)
    kept = _kept(losses)
    y = copula(losses[kept])
    Uo = np.stack([units[i] for i in kept])
    Fo = encoding.features(Uo)
    target = GaussianProcess(Fo, y)
    weights = prior
    if len(y) >= 3:
        at_own = np.stack([m.gp.mean(Fo) for m in models])
        ranked = ranking_weights(at_own, target.loo_mean(), y, rng)
        a = prior_weight / (prior_weight + len(own))  # the similarities fade with every own trial, kept or not
        weights = a * prior + (1 - a) * ranked
    centres = np.repeat(Uo[np.argmin(y)][None, :], k, axis=0)
    scales = np.array(_TRUST_STEPS)[rng.randint(len(_TRUST_STEPS), size=(k, 1))]
    cand = encoding.perturb(rng, centres, scales)
    if np.count_nonzero(losses == losses.min()) >= 2:  # a flat best: steps around it change nothing
        cand[: k // 2] = encoding.uniform(rng, k // 2)
    cand = snap(encoding, cand)  # integers, steps and categories rounded
    done = {u.tobytes() for u in units}
    fresh = np.array([u.tobytes() not in done for u in cand])
    apart = fresh & (_distances(cand, np.stack(units)).min(1) >= _MIN_STEP)
    if apart.any():
        cand = cand[apart]
    elif fresh.any():
        cand = cand[fresh]
    features = encoding.features(cand)
    own_mean, own_std = target.predict(features)
    bound = weights[-1] * own_mean - _CONFIDENCE * own_std
    for m, w in zip(models, weights[:-1]):
        if w > 1e-3:  # the rest cannot change the choice much; predicting for them is most of the cost
            bound = bound + w * m.gp.mean(features)
    return encoding.decode(cand[int(np.argmin(bound))])
