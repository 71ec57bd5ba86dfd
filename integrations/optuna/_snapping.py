"""Snapping many unit vectors at once: ``_Encoding.unit(_Encoding.decode(u))`` of every row, column by column.

The transfer phase snaps its ``n_candidates`` steps on every trial; decoding and encoding them one
configuration at a time in Python was most of a transfer trial's cost. :func:`snap` does the same
floating-point operations as ``_Encoding.unit(_Encoding.decode(u))`` (``_from_unit``, ``_contains`` and
``_to_unit`` of ``_search_space``) in the same order, on whole columns: sums, products and quotients by
NumPy (IEEE arithmetic, as in Python), roundings by ``np.rint`` (half to even, as ``round``), comparisons
written as Python's ``min`` and ``max`` make them, and logarithms and exponentials by ``math``, element by
element, so that no vectorised approximation differs in the last bit. The results are bit-identical
(``tests/integrations/test_optuna_cost.py`` compares them on random spaces).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import numpy as np
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from ._search_space import _Encoding


def _py_max(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Python's ``max(a, b)`` elementwise: ``b`` only where ``b > a`` (so NaN and -0.0 behave alike)."""
    return np.where(np.greater(b, a), b, a)


def _py_min(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Python's ``min(a, b)`` elementwise: ``b`` only where ``b < a``."""
    return np.where(np.less(b, a), b, a)


def _math(f: Callable[[float], float], x: np.ndarray) -> np.ndarray:
    """``math.log`` or ``math.exp`` of every element, exactly as the scalar code computes it."""
    return np.fromiter(map(f, x.tolist()), dtype=float, count=len(x))


def _categorical(d: CategoricalDistribution, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each choice's index as ``to_internal_repr`` gives it (NaN where it refuses), looked up by ``int(u)``."""
    table = np.empty(len(d.choices))
    for i, choice in enumerate(d.choices):
        try:
            table[i] = float(d.to_internal_repr(choice))
        except (ValueError, TypeError):
            table[i] = math.nan
    units = table[u.astype(int)]  # truncation, as int(u); an index out of range raises, as choices[int(u)]
    return units, ~np.isnan(units)


def _numeric(d: FloatDistribution | IntDistribution, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_to_unit(d, _from_unit(d, u))`` and ``_contains(d, _from_unit(d, u))`` for a column of numbers."""
    lo, hi = float(d.low), float(d.high)
    x = _py_min(_py_max(u, 0.0), 1.0)
    if d.log:
        v = _math(math.exp, math.log(lo) + x * (math.log(hi) - math.log(lo)))
    else:
        v = lo + x * (hi - lo)
    step = d.step
    if isinstance(d, IntDistribution):
        step = step or 1
        v = float(d.low) + np.rint((v - float(d.low)) / step) * step  # whole numbers: exact as Python's ints
    elif step is not None:
        v = d.low + np.rint((v - d.low) / step) * step
    v = _py_min(_py_max(v, d.low), d.high).astype(float)
    # _contains: to_internal_repr (not NaN, positive on a log scale), the range, the step
    ok = ~np.isnan(v) & (v >= d.low) & (v <= d.high)
    if d.log:
        ok &= v > 0.0
    if isinstance(d, IntDistribution):
        ok &= np.mod(v - d.low, d.step) == 0
    elif d.step is not None:
        k = (v - d.low) / d.step
        ok &= np.abs(k - np.rint(k)) < 1.0e-8
    # _to_unit
    if d.log:
        lo, hi, v = math.log(lo), math.log(hi), _math(math.log, np.where(v > 0.0, v, 1.0))
    units = np.full(len(v), 0.5) if hi == lo else _py_min(_py_max((v - lo) / (hi - lo), 0.0), 1.0)
    return units, ok


def snap(encoding: _Encoding, U: np.ndarray) -> np.ndarray:
    """The unit vectors of the configurations the rows of ``U`` decode to (integers,
    steps and categories rounded), a row left as it is when its configuration falls outside the space.

    Examples
    --------
    >>> from optuna.distributions import CategoricalDistribution, IntDistribution
    >>> encoding = _Encoding({"n": IntDistribution(0, 4), "k": CategoricalDistribution(["a", "b"])})
    >>> U = np.array([[0.3, 1.0], [0.99, 0.0]])
    >>> snap(encoding, U)
    array([[0.25, 1.  ],
           [1.  , 0.  ]])
    >>> bool((snap(encoding, U) == np.stack([encoding.unit(encoding.decode(u)) for u in U])).all())
    True
    """
    U = np.asarray(U, dtype=float)
    columns, valid = [], np.ones(len(U), dtype=bool)
    for j, d in enumerate(encoding.dists):
        if isinstance(d, CategoricalDistribution):
            units, ok = _categorical(d, U[:, j])
        else:
            units, ok = _numeric(cast("FloatDistribution | IntDistribution", d), U[:, j])
        columns.append(units)
        valid &= ok
    snapped = np.stack(columns, axis=1) if columns else np.zeros((len(U), 0))
    return np.where(valid[:, None], snapped, U)
