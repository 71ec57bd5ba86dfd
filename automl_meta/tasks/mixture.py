"""A mixture of task families: each task comes from one family, chosen at random by weight."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..exceptions import TaskError
from .batch import Task
from .distribution import TaskDistribution


def _weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    """``weights`` normalised to sum to 1 (equal when None), or a TaskError saying what was wrong."""
    if weights is None:
        return np.full(n, 1.0 / n)
    try:
        w = [float(v) for v in weights]
        ok = not any(isinstance(v, (bool, np.bool_)) for v in weights)
    except (TypeError, ValueError):
        w, ok = [], False
    if not ok or len(w) != n or not all(math.isfinite(v) and v > 0 for v in w):
        raise TaskError(f"weights must be {n} positive finite numbers, one per family; got {weights!r}.")
    return np.asarray(w) / sum(w)


class MixtureTasks(TaskDistribution):
    """Tasks drawn from several families of one task type, each task from one family chosen by weight.

    Batches are padded to the widest family (the largest ``n_features`` and ``n_outputs``), so a
    learner meta-trained on the mixture serves every family's tasks.

    Parameters
    ----------
    families : sequence of TaskDistribution
        The families, all of one task type.
    weights : sequence of float, optional
        The probability of drawing from each family (normalised; default: equal).

    Examples
    --------
    >>> from automl_meta.tasks import MixtureTasks, SyntheticTabular
    >>> small = SyntheticTabular("regression", n_features=(1, 4), shots=10)
    >>> wide = SyntheticTabular("regression", n_features=(8, 12), shots=10)
    >>> mix = MixtureTasks([small, wide], weights=[3, 1])
    >>> mix.n_features, mix.weights.tolist()
    (12, [0.75, 0.25])
    >>> tuple(mix.sample(5, rng=0).x_support.shape)
    (5, 10, 12)
    """

    def __init__(self, families: Sequence[TaskDistribution], weights: Sequence[float] | None = None) -> None:
        families = list(families)
        if not families:
            raise TaskError("MixtureTasks needs at least one task family; got an empty list.")
        bad = [type(f).__name__ for f in families if not isinstance(f, TaskDistribution)]
        if bad:
            raise TaskError(f"MixtureTasks takes TaskDistribution families (e.g. SyntheticTabular), got {bad}.")
        types = [f.task_type for f in families]
        if len(set(types)) > 1:
            raise TaskError(f"All families of a MixtureTasks must share one task type; got {types}.")
        self.families = families
        self.weights = _weights(weights, len(families))
        self.task_type = types[0]
        self.n_features = max(f.n_features for f in families)
        self.n_outputs = max(f.n_outputs for f in families)

    def sample_task(self, rng: np.random.Generator) -> Task:
        family = self.families[int(rng.choice(len(self.families), p=self.weights))]
        return family.sample_task(rng)

    def describe(self) -> dict[str, Any]:
        # The components' descriptions stay nested: a top-level feature_names or shared_features
        # would make the artifact's Preprocessing record treat the mixture as a family of one table.
        return {
            **super().describe(),
            "components": [f.describe() for f in self.families],
            "weights": self.weights.tolist(),
        }
