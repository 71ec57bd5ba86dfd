"""Overflow-safe standardisation, shared by :class:`Preprocessing` and the scikit-learn estimators (private).

The helpers compute in units of a power of two near each column's largest magnitude. Multiplying or
dividing by a power of two is exact in floating point, so on data whose naive computation does not
overflow they give bit-for-bit the results of the naive formulas, and on data near the float64 limit
(targets of 1e200, say) they give the same results as on the data divided by that power, instead of
``inf`` and NaN.
"""

from __future__ import annotations

import numpy as np

_TINY = 1e-12  # a spread at or below this counts as constant (scale 1), as before the overflow-safe version


def _pow2(*arrays: np.ndarray) -> np.ndarray:
    """Per column, a power of two at least half the largest magnitude in ``arrays`` (1 where all are 0)."""
    peak = np.max([np.max(np.abs(np.atleast_2d(a)), axis=0) for a in arrays], axis=0)
    _, exponent = np.frexp(peak)  # peak = m * 2**exponent with 0.5 <= m < 1
    # 2**(exponent - 1) <= peak, so the scaled values stay below 2 and the power itself below the float64 limit.
    return np.where(peak > 0, np.ldexp(1.0, exponent - 1), 1.0)


def _mean_scale(a: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation of each column of ``a`` (n_samples, n_columns), without overflow.

    A standard deviation at or below 1e-12 gives a scale of 1 (a constant column).
    """
    unit = _pow2(a)
    u = a / unit
    mean = np.average(u, axis=0, weights=weight)
    std = np.sqrt(np.average((u - mean) ** 2, axis=0, weights=weight)) * unit
    return mean * unit, np.where(std > _TINY, std, 1.0)


def _to_standard(a: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(a - mean) / scale`` without overflow in the difference (``inf`` where the quotient itself overflows)."""
    unit = _pow2(a, mean, scale)
    with np.errstate(over="ignore"):  # callers clip or refuse an infinite result
        return (a / unit - mean / unit) / (scale / unit)


def _from_standard(z: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``z * scale + mean`` without overflow in the product; refused when the result leaves float64's range."""
    unit = _pow2(mean, scale)
    with np.errstate(over="ignore"):
        out = (z * (scale / unit) + mean / unit) * unit
    if not np.all(np.isfinite(out)):
        raise ValueError(
            f"Some predictions exceed the float64 range (about 1.8e308): the targets were fitted with "
            f"mean {mean.tolist()} and scale {scale.tolist()}. Fit on y divided by a constant "
            "(for example y / 1e300) and read the predictions in those units."
        )
    return out


def _standardise_features(X: np.ndarray, mean: np.ndarray, scale: np.ndarray, clip: float) -> np.ndarray:
    """Standardised features, clipped to ``[-clip, clip]``: one outlier must not dominate an embedding."""
    return np.clip(_to_standard(X, mean, scale), -clip, clip)
