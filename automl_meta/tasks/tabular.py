"""Synthetic tabular task families: random shapes, random generating mechanisms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from ..exceptions import TaskError
from .batch import TASK_TYPES, Task, TaskType
from .distribution import TaskDistribution

MECHANISMS = ("mlp", "gmm", "tree", "linear", "scm")


def _range(value: Any, name: str, minimum: int) -> tuple[int, int]:  # any user input: checked here
    try:
        lo, hi = (value, value) if np.isscalar(value) else tuple(value)
        ok = (
            not any(isinstance(v, (bool, np.bool_, str)) for v in (lo, hi))
            and float(lo).is_integer()
            and float(hi).is_integer()
            and minimum <= lo <= hi
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise TaskError(f"{name} must be an int or an (low, high) pair of ints >= {minimum}, got {value!r}.")
    return int(lo), int(hi)


def _standardised_by(reference: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    """Each array standardised with the columns' statistics over ``reference`` (the support rows), clipped at 6.

    Constant columns keep scale 1. The estimators standardise with the training rows' statistics and clip
    alike, so tasks look like what a fitted model sees.
    """
    mean, std = reference.mean(0), reference.std(0)
    scale = np.where(std > 1e-8, std, 1.0)
    return [np.clip((a - mean) / scale, -6, 6) for a in arrays]


class SyntheticTabular(TaskDistribution):
    """Tabular tasks of varied shape drawn from random generating mechanisms.

    Each task draws its number of features and classes, a mechanism, a noise
    level and, for classification, class imbalance, then samples ``X``
    (correlated Gaussian features, some skewed, some discrete) and ``y`` from
    the mechanism, which uses a random subset of the features:

    - ``"mlp"``: a random two-layer network of ``X``;
    - ``"gmm"``: a Gaussian mixture with one or more components per class;
    - ``"tree"``: a random axis-aligned decision tree;
    - ``"linear"``: a random linear function;
    - ``"scm"``: a random structural causal model, in which features and target
      are nodes of a random network of latent causes (features may be causes,
      effects or siblings of the target).

    Features are standardised with the support set's statistics (as the
    scikit-learn estimators do with training data); regression targets are
    standardised; classification labels come from the argmax of the
    mechanism's per-class scores plus a random class bias (imbalance).

    Parameters
    ----------
    task_type : {"classification", "regression"}
    n_features : int or (int, int), default=(2, 16)
        Features per task (a range draws uniformly per task).
    n_classes : int or (int, int), default=(2, 5)
        Classes per classification task (ignored for regression).
    shots : int or (int, int), default=(8, 64)
        Support samples per task.
    query_shots : int, default=32
        Query samples per task.
    mechanisms : sequence of str, default=all
        Which of ``"mlp"``, ``"gmm"``, ``"tree"``, ``"linear"`` to draw from.
    noise : (float, float), default=(0.0, 0.3)
        Range of the label-noise level (the flip rate for classes, the noise
        standard deviation for standardised regression targets).

    Examples
    --------
    >>> from automl_meta.tasks import SyntheticTabular
    >>> fam = SyntheticTabular("classification", n_features=(3, 6), n_classes=3, shots=20)
    >>> batch = fam.sample(4, rng=0)
    >>> tuple(batch.x_support.shape), batch.n_outputs
    ((4, 20, 6), 3)
    """

    def __init__(
        self,
        task_type: str = "classification",
        *,
        n_features: int | tuple[int, int] = (2, 16),
        n_classes: int | tuple[int, int] = (2, 5),
        shots: int | tuple[int, int] = (8, 64),
        query_shots: int = 32,
        mechanisms: str | Sequence[str] = MECHANISMS,
        noise: tuple[float, float] = (0.0, 0.3),
    ) -> None:
        if task_type not in TASK_TYPES:
            raise TaskError(f"task_type must be one of {TASK_TYPES}, got {task_type!r}.")
        if isinstance(mechanisms, str):
            mechanisms = (mechanisms,)  # one mechanism by name
        unknown = set(mechanisms) - set(MECHANISMS)
        if unknown or not mechanisms:
            raise TaskError(f"mechanisms must be a non-empty subset of {MECHANISMS}, got {list(mechanisms)}.")
        self.task_type = cast(TaskType, task_type)  # checked above
        self.feature_range = _range(n_features, "n_features", 1)
        self.class_range = _range(n_classes, "n_classes", 2)
        self.shot_range = _range(shots, "shots", 1)
        self.query_shots = _range(query_shots, "query_shots", 1)[0]
        self.mechanisms = tuple(mechanisms)
        if len(noise) != 2 or not (0.0 <= noise[0] <= noise[1] < 1.0):
            raise TaskError(f"noise must be a (low, high) pair in [0, 1), got {noise!r}.")
        self.noise = cast("tuple[float, float]", tuple(noise))
        self.n_features = self.feature_range[1]
        self.n_outputs = self.class_range[1] if task_type == "classification" else 1

    @staticmethod
    def _inputs(n: int, f: int, rng: np.random.Generator) -> np.ndarray:
        mix = np.eye(f) + rng.normal(size=(f, f)) * rng.uniform(0, 0.7)  # correlated features
        X = rng.normal(size=(n, f)) @ mix
        X /= X.std(0) + 1e-8
        skewed = rng.random(f) < 0.2
        X[:, skewed] = np.exp(X[:, skewed])
        discrete = rng.random(f) < 0.2
        X[:, discrete] = np.round(X[:, discrete] * rng.uniform(0.5, 2))
        return X

    @staticmethod
    def _scm(n: int, f: int, n_out: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Features and target scores as nodes of a random layered network of latent causes."""
        width, depth = f + n_out + int(rng.integers(2, 8)), int(rng.integers(2, 4))
        layer = rng.normal(size=(n, width))
        nodes = [layer]
        acts: list[Callable[[np.ndarray], np.ndarray]] = [np.tanh, lambda z: np.maximum(z, 0), np.sin]
        act = acts[rng.integers(3)]
        for _ in range(depth):
            w = rng.normal(size=(width, width)) * (rng.random((width, width)) < 0.5) / np.sqrt(width)
            layer = act(layer @ w * 2) + rng.normal(scale=rng.uniform(0.01, 0.3), size=(n, width))
            nodes.append(layer)
        pool = np.concatenate(nodes[1:], 1)
        pick = rng.permutation(pool.shape[1])
        return pool[:, pick[:f]], pool[:, pick[f : f + n_out]] * 3

    def _scores(self, mech: str, X: np.ndarray, n_out: int, rng: np.random.Generator) -> np.ndarray:
        n: int
        f: int
        n, f = X.shape
        relevant = rng.random(f) < rng.uniform(0.3, 1.0)
        relevant[rng.integers(f)] = True
        X = X[:, relevant]
        f = X.shape[1]
        if mech == "linear":
            return X @ rng.normal(size=(f, n_out))
        if mech == "mlp":
            h = np.tanh(X @ rng.normal(size=(f, 16)) / np.sqrt(f) * 2 + rng.normal(size=16))
            return h @ rng.normal(size=(16, n_out))
        if mech == "gmm":
            # Scores are negative distances to per-output centres: a mixture assigns each point to a centre.
            centres = rng.normal(scale=1.5, size=(n_out, rng.integers(1, 3), f))
            d = ((X[:, None, None, :] - centres[None]) ** 2).sum(-1).min(-1)
            return -d
        # "tree": a random depth-3 axis-aligned tree with random leaf values.
        leaves = rng.normal(scale=2.0, size=(8, n_out))
        feats, thresholds = rng.integers(0, f, size=7), rng.normal(scale=0.7, size=7)
        node = np.zeros(n, dtype=int)
        for _ in range(3):
            go_right = X[np.arange(n), feats[node]] > thresholds[node]
            node = 2 * node + 1 + go_right
        return leaves[node - 7]

    def sample_task(self, rng: np.random.Generator) -> Task:
        f = int(rng.integers(self.feature_range[0], self.feature_range[1] + 1))
        k = int(rng.integers(self.shot_range[0], self.shot_range[1] + 1))
        n = k + self.query_shots
        mech = self.mechanisms[rng.integers(len(self.mechanisms))]
        noise = rng.uniform(*self.noise)
        c = int(rng.integers(self.class_range[0], self.class_range[1] + 1)) if self.task_type == "classification" else 1
        if mech == "scm":
            X, scores = self._scm(n, f, c, rng)
        else:
            X = self._inputs(n, f, rng)
            scores = self._scores(mech, X, c, rng)
        (X,) = _standardised_by(X[:k], X)
        if self.task_type == "classification":
            scores = (scores - scores.mean(0)) / (scores.std(0) + 1e-8)
            y = (scores + rng.normal(scale=rng.uniform(0, 1.5), size=c)).argmax(1)  # random class bias
            flip = rng.random(n) < noise
            y[flip] = rng.integers(0, c, size=int(flip.sum()))
            return Task(X[:k], y[:k], X[k:], y[k:], task_type="classification", n_classes=c)
        y = scores[:, 0]
        y = (y - y.mean()) / (y.std() + 1e-8) + noise * rng.normal(size=n)
        return Task(X[:k], y[:k], X[k:], y[k:])

    def get_config(self) -> dict[str, Any]:
        return {
            "task_type": self.task_type,
            "n_features": list(self.feature_range),
            "n_classes": list(self.class_range),
            "shots": list(self.shot_range),
            "query_shots": self.query_shots,
            "mechanisms": list(self.mechanisms),
            "noise": list(self.noise),
        }
