"""Search spaces as the unit cube: how the sampler's surrogates see configurations of Optuna distributions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


def _kind(d: BaseDistribution) -> str:
    """ "cat", "int" or "float": a stored parameter serves a query parameter of the same kind."""
    return "cat" if isinstance(d, CategoricalDistribution) else ("int" if isinstance(d, IntDistribution) else "float")


def _contains(d: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is a value of ``d``: in range, on the step, one of the choices.

    The same test as Optuna's private ``BaseDistribution._contains`` (after ``to_internal_repr``, which
    refuses values of the wrong type, NaN and non-positive values of a log scale), written on the
    distributions' public attributes.

    Examples
    --------
    >>> from optuna.distributions import FloatDistribution
    >>> d = FloatDistribution(0.0, 1.0, step=0.25)
    >>> _contains(d, 0.5), _contains(d, 0.6), _contains(d, 2.0), _contains(d, "a")
    (True, False, False, False)
    """
    try:
        internal = d.to_internal_repr(value)
    except (ValueError, TypeError):
        return False
    if isinstance(d, CategoricalDistribution):
        return True  # to_internal_repr found the choice's index
    d = cast("FloatDistribution | IntDistribution", d)  # not categorical: Optuna's others are these two
    if not d.low <= internal <= d.high:
        return False
    if isinstance(d, IntDistribution):
        return (internal - d.low) % d.step == 0
    if d.step is None:
        return True
    k = (internal - d.low) / d.step
    return abs(k - round(k)) < 1.0e-8


def _clip(d: BaseDistribution, value: Any) -> Any:
    """``value`` as a value of ``d``: itself when it is one; a number outside the range (or off the step)
    moved to the nearest value of the range; None for a category ``d`` lacks or a value of another kind.

    Examples
    --------
    >>> from optuna.distributions import FloatDistribution, IntDistribution
    >>> _clip(FloatDistribution(0.01, 0.1, log=True), 0.5), _clip(IntDistribution(10, 20), 3)
    (0.1, 10)
    >>> _clip(IntDistribution(1, 5), "a") is None
    True
    """
    if _contains(d, value):
        if isinstance(d, IntDistribution):
            return int(value)
        return float(value) if isinstance(d, FloatDistribution) else value
    if isinstance(d, CategoricalDistribution) or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    d = cast("FloatDistribution | IntDistribution", d)  # not categorical: Optuna's others are these two
    return _from_unit(d, 0.0 if value < d.low else (1.0 if value > d.high else _to_unit(d, value)))


def _to_unit(d: BaseDistribution, value: Any) -> float:
    """A value's coordinate: its place in [0, 1] (on the log scale for log distributions), or a category's index."""
    if isinstance(d, CategoricalDistribution):
        return float(d.to_internal_repr(value))
    d = cast("FloatDistribution | IntDistribution", d)  # not categorical: Optuna's others are these two
    lo, hi, v = float(d.low), float(d.high), float(value)
    if d.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return 0.5 if hi == lo else min(max((v - lo) / (hi - lo), 0.0), 1.0)


def _from_unit(d: BaseDistribution, u: float) -> Any:
    """The value of ``d`` at coordinate ``u`` (rounded to the step; integers as int, floats as float)."""
    if isinstance(d, CategoricalDistribution):
        return d.choices[int(u)]
    d = cast("FloatDistribution | IntDistribution", d)  # not categorical: Optuna's others are these two
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


def study_ranges(study: Any, space: Mapping[str, BaseDistribution]) -> dict[str, BaseDistribution]:
    """``space`` with the study's own distributions wherever its trials have shown one of the same kind.

    The portfolio encodes past configurations in these ranges, so that those outside the study's ranges are
    left out; before a trial shows a parameter's range (on the first trial), a stored value outside it is
    clipped into it (:func:`_clip`).
    """
    seen: dict[str, BaseDistribution] = {}
    for t in study.get_trials(deepcopy=False):
        seen.update(t.distributions)
    return {n: seen[n] if n in seen and _kind(seen[n]) == _kind(d) else d for n, d in space.items()}


class _Encoding:
    """Configurations of a search space as points of the unit cube.

    A configuration's *unit vector* holds one entry per parameter: numbers mapped to [0, 1] (on the log
    scale where the distribution is logarithmic), categories by index. Its *features*, what the surrogates
    see, replace each category index by a one-hot block scaled so that two categories are as far apart as
    the two ends of a numerical range.

    Examples
    --------
    >>> from optuna.distributions import CategoricalDistribution, FloatDistribution
    >>> encoding = _Encoding({"x": FloatDistribution(0, 10), "k": CategoricalDistribution(["a", "b"])})
    >>> encoding.unit({"x": 2.5, "k": "b"})
    array([0.25, 1.  ])
    >>> encoding.decode(encoding.unit({"x": 2.5, "k": "b"}))
    {'x': 2.5, 'k': 'b'}
    >>> encoding.unit({"x": 20.0, "k": "b"}) is None  # outside the space
    True
    """

    def __init__(self, space: Mapping[str, BaseDistribution]) -> None:
        self.names = list(space)
        self.dists = [space[n] for n in self.names]
        self.cat = np.array([isinstance(d, CategoricalDistribution) for d in self.dists])
        self.sizes = np.array([len(d.choices) if isinstance(d, CategoricalDistribution) else 0 for d in self.dists])

    def unit(self, config: Mapping[str, Any]) -> np.ndarray | None:
        """The unit vector of ``config``, or None when it lacks a parameter or lies outside the space."""
        if not all(n in config and _contains(d, config[n]) for n, d in zip(self.names, self.dists)):
            return None
        return np.array([_to_unit(d, config[n]) for n, d in zip(self.names, self.dists)])

    def features(self, U: np.ndarray) -> np.ndarray:
        """The surrogates' inputs for unit vectors ``U``: categories as scaled one-hot blocks."""
        U = np.atleast_2d(U)
        blocks = []
        for j, (is_cat, size) in enumerate(zip(self.cat, self.sizes)):
            if is_cat:
                blocks.append(np.eye(size)[U[:, j].astype(int)] / math.sqrt(2.0))
            else:
                blocks.append(U[:, j : j + 1])
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(U), 0))

    def decode(self, u: np.ndarray) -> dict[str, Any]:
        """The configuration at unit vector ``u``."""
        return {n: _from_unit(d, u[j]) for j, (n, d) in enumerate(zip(self.names, self.dists))}

    def uniform(self, rng: np.random.RandomState, n: int) -> np.ndarray:
        """``n`` unit vectors drawn uniformly (categories uniformly among their indices)."""
        U = rng.uniform(size=(n, len(self.names)))
        U[:, self.cat] = np.floor(U[:, self.cat] * self.sizes[self.cat])
        return U

    def perturb(self, rng: np.random.RandomState, centres: np.ndarray, scale: float | np.ndarray) -> np.ndarray:
        """Gaussian steps around ``centres`` (reflected at the cube's faces); categories change with p = 0.2."""
        U = centres + rng.normal(scale=scale, size=centres.shape)
        U = np.abs(U)
        U = np.clip(np.where(U > 1, 2 - U, U), 0.0, 1.0)
        flip = rng.uniform(size=centres.shape) < 0.2
        other = self.uniform(rng, len(centres))
        U[:, self.cat] = np.where(flip[:, self.cat], other[:, self.cat], centres[:, self.cat])
        return U
