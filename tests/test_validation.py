"""The shared checks of user-given settings (automl_meta._validation)."""

import re

import numpy as np
import pytest

from automl_meta._validation import (
    check_bool,
    check_int_at_least,
    check_int_sequence,
    check_nonnegative_float,
    check_nonnegative_int,
    check_optional_int,
    check_positive_float,
    check_positive_int,
    check_seed,
)
from automl_meta.exceptions import TaskError

INT_CHECKS = [
    (lambda v: check_positive_int(v, "width"), 1),
    (lambda v: check_nonnegative_int(v, "width"), 0),
    (lambda v: check_int_at_least(v, "width", 3), 3),
    (lambda v: check_optional_int(v, "width", 2), 2),
    (lambda v: check_seed(v, "width"), 0),
]


@pytest.mark.parametrize("check, minimum", INT_CHECKS)
def test_int_checks_accept_python_and_numpy_integers(check, minimum):
    assert check(minimum) == minimum and type(check(minimum)) is int
    assert check(np.int64(minimum + 5)) == minimum + 5 and type(check(np.int64(minimum + 5))) is int


@pytest.mark.parametrize("check, minimum", INT_CHECKS)
@pytest.mark.parametrize("bad", [True, False, 3.0, np.float64(4.0), "3", -1])
def test_int_checks_refuse_bools_floats_and_out_of_range(check, minimum, bad):
    with pytest.raises(ValueError, match="^width must be .* got " + re.escape(f"{bad!r}.") + "$"):
        check(bad)


def test_int_check_bounds_and_error_type():
    with pytest.raises(ValueError, match="width must be a positive integer, got 0"):
        check_positive_int(0, "width")
    with pytest.raises(TaskError, match="shots must be an integer >= 2, got 1"):
        check_int_at_least(1, "shots", 2, error=TaskError)
    assert check_optional_int(None, "max_rows", 10) is None
    with pytest.raises(ValueError, match=r"max_rows must be None \(the cap\) or an integer >= 10, got 9"):
        check_optional_int(9, "max_rows", 10, none_means="the cap")


def test_int_sequence():
    assert check_int_sequence((np.int32(4), 8), "hidden_sizes") == [4, 8]
    assert check_int_sequence([], "hidden_sizes") == []
    for bad in ([0], [True], [4.0], ["4"]):
        with pytest.raises(ValueError, match="hidden_sizes must be positive integers"):
            check_int_sequence(bad, "hidden_sizes")
    with pytest.raises(ValueError, match="hidden_sizes must be a non-empty sequence of positive integers, got"):
        check_int_sequence([], "hidden_sizes", nonempty=True)


def test_float_checks():
    assert check_positive_float(2, "lr") == 2.0 and check_positive_float(np.float32(0.5), "lr") == 0.5
    assert check_nonnegative_float(0, "lr") == 0.0 and check_nonnegative_float(np.int64(3), "lr") == 3.0
    assert check_nonnegative_float(float("inf"), "weight", finite=False) == float("inf")
    for bad in (True, 0.0, -1.0, float("inf"), float("nan"), "1"):
        with pytest.raises(ValueError, match=r"^lr must be a positive finite number, got"):
            check_positive_float(bad, "lr")
    for bad in (True, -0.5, float("inf"), float("nan"), "1"):
        with pytest.raises(ValueError, match=r"^lr must be a finite number >= 0 \(1 is neutral\), got"):
            check_nonnegative_float(bad, "lr", hint="1 is neutral")
    for bad in (False, -0.5, float("nan")):
        with pytest.raises(ValueError, match=r"^weight must be a number >= 0, got"):
            check_nonnegative_float(bad, "weight", finite=False)


def test_bool():
    assert check_bool(True, "first_order") is True and check_bool(False, "first_order") is False
    for bad in (1, 0, np.bool_(True), "yes", None):
        with pytest.raises(ValueError, match="first_order must be True or False, got"):
            check_bool(bad, "first_order")
