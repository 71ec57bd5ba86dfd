"""Checks of user-given settings, shared by every module, so that one kind of mistake gets one message.

Each check returns the value converted to its plain Python type, or raises ``ValueError`` naming the setting,
saying what is allowed and showing the value given. An integer is a ``numbers.Integral`` that is not a ``bool``
(numpy integers pass; ``True`` is an ``int`` to Python, never a count to a user). Checks that task distributions
use take ``error=TaskError`` (a ``ValueError`` subclass) so that their callers can keep catching ``TaskError``.

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
from collections.abc import Iterable
from typing import cast

__all__ = [
    "check_bool",
    "check_int_at_least",
    "check_int_sequence",
    "check_nonnegative_float",
    "check_nonnegative_int",
    "check_optional_int",
    "check_positive_float",
    "check_positive_int",
    "check_seed",
]


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


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


def check_int_at_least(value: object, name: str, minimum: int, *, error: type[ValueError] = ValueError) -> int:
    """``value`` as an ``int`` >= ``minimum``, or ``error`` (a ``ValueError`` type) naming ``name``."""
    if not _is_int(value) or cast(int, value) < minimum:
        raise error(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(cast(int, value))


def check_optional_int(value: object, name: str, minimum: int, *, none_means: str = "") -> int | None:
    """``None``, or ``value`` as an ``int`` >= ``minimum``; else a ``ValueError`` (``none_means`` explains None)."""
    if value is None:
        return None
    if not _is_int(value) or cast(int, value) < minimum:
        meaning = f" ({none_means})" if none_means else ""
        raise ValueError(f"{name} must be None{meaning} or an integer >= {minimum}, got {value!r}.")
    return int(cast(int, value))


def check_seed(value: object, name: str = "seed") -> int:
    """A random seed: an ``int`` >= 0 (numpy integers too), or a ``ValueError``."""
    if not _is_int(value) or cast(int, value) < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    return int(cast(int, value))


def check_int_sequence(value: Iterable[object], name: str, *, nonempty: bool = False) -> list[int]:
    """``value`` as a list of ``int`` >= 1 (empty only if not ``nonempty``), or a ``ValueError`` naming ``name``."""
    items = list(value)
    if (nonempty and not items) or any(not _is_int(v) or cast(int, v) < 1 for v in items):
        what = "a non-empty sequence of positive integers" if nonempty else "positive integers"
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    return [int(cast(int, v)) for v in items]


def check_positive_float(value: object, name: str) -> float:
    """``value`` as a finite ``float`` > 0, or a ``ValueError`` naming ``name``."""
    # cast: typeshed's numbers.Real does not compare with int; a Real value does.
    if not _is_real(value) or not (0 < cast(float, value) < float("inf")):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return float(cast(float, value))


def check_nonnegative_float(value: object, name: str, *, finite: bool = True, hint: str = "") -> float:
    """``value`` as a ``float`` >= 0 (and finite unless ``finite=False``), or a ``ValueError`` naming ``name``.

    ``hint`` is added to the message in parentheses (what a typical value means).
    """
    # 0 <= NaN is False, so NaN is refused either way.
    if not _is_real(value) or not 0 <= cast(float, value) or (finite and cast(float, value) == float("inf")):
        what = "a finite number >= 0" if finite else "a number >= 0"
        extra = f" ({hint})" if hint else ""
        raise ValueError(f"{name} must be {what}{extra}, got {value!r}.")
    return float(cast(float, value))


def check_fraction(value: object, name: str) -> float:
    """``value`` as a ``float`` in [0, 1], or a ``ValueError`` naming ``name``."""
    if not _is_real(value) or not 0 <= cast(float, value) <= 1:  # NaN fails both comparisons
        raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}.")
    return float(cast(float, value))


def check_bool(value: object, name: str) -> bool:
    """``value`` if it is ``True`` or ``False`` (a Python ``bool``), else a ``ValueError`` naming ``name``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}.")
    return value
