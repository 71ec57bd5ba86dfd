"""Checks of user-given settings, shared by every module, so that one kind of mistake gets one message.

Each check returns the value converted to its plain Python type, or raises ``ValueError`` naming the setting.
``bool`` is refused where a number is expected (``True`` is an ``int`` to Python, never a count to a user).

Examples
--------
>>> from automl_meta._validation import check_positive_int
>>> check_positive_int(3, "steps")
3
>>> check_positive_int(0, "steps")
Traceback (most recent call last):
...
ValueError: steps must be a positive integer, got 0.
"""

from __future__ import annotations

import numbers
from typing import cast

__all__ = ["check_positive_int", "check_nonnegative_int", "check_positive_float", "check_seed"]


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(value: object, name: str) -> int:
    """``value`` as an ``int`` >= 1, or a ``ValueError`` naming ``name``."""
    if not _is_int(value) or cast(int, value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(cast(int, value))


def check_nonnegative_int(value: object, name: str) -> int:
    """``value`` as an ``int`` >= 0, or a ``ValueError`` naming ``name``."""
    if not _is_int(value) or cast(int, value) < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}.")
    return int(cast(int, value))


def check_seed(value: object, name: str = "seed") -> int:
    """A random seed: an ``int`` >= 0 (numpy integers too), or a ``ValueError``."""
    if not _is_int(value) or cast(int, value) < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    return int(cast(int, value))


def check_positive_float(value: object, name: str) -> float:
    """``value`` as a finite ``float`` > 0, or a ``ValueError`` naming ``name``."""
    # cast: typeshed's numbers.Real does not compare with int; a Real value does.
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < cast(float, value) < float("inf")):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return float(value)
