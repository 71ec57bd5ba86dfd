"""The one way corpus tasks are encoded for a model: the Pipeline a user would write for a table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer

MAX_CATEGORIES = 20


def make_preprocessor(X: pd.DataFrame | None = None, *, max_categories: int = MAX_CATEGORIES) -> ColumnTransformer:
    """A scikit-learn ``ColumnTransformer`` for a corpus table (or any table of numbers and categories).

    Numeric columns: median imputation, then standardisation. ``category``, string, object and boolean
    columns: missing values become their own ``"missing"`` level, then one-hot encoding with at most
    ``max_categories`` columns per feature (rarer levels share one column) and unknown levels at
    transform time encoded as all zeros (``handle_unknown="ignore"``). Columns are picked by dtype when
    the transformer is fitted, so one transformer serves any table; ``X`` is accepted for symmetry with
    the callers' code and is not used.

    Parameters
    ----------
    X : pandas.DataFrame, optional
        Unused; the columns are selected by dtype at ``fit``.
    max_categories : int, default=20
        Cap on the one-hot columns of one categorical feature.

    Returns
    -------
    sklearn.compose.ColumnTransformer
        Unfitted; its output is a dense float array.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from automl_meta.corpus import make_preprocessor
    >>> X = pd.DataFrame({"size": [1.0, np.nan, 3.0, 4.0],
    ...                   "colour": pd.Categorical(["red", "blue", None, "red"])})
    >>> Z = make_preprocessor().fit_transform(X)
    >>> Z.shape, bool(np.isfinite(Z).all())
    ((4, 4), True)
    """
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing", keep_empty_features=True),
        OneHotEncoder(handle_unknown="ignore", max_categories=max_categories, sparse_output=False),
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, make_column_selector(dtype_include="number")),
            ("categorical", categorical, make_column_selector(dtype_exclude="number")),
        ],
        sparse_threshold=0.0,
    )


def encode_table(X: object) -> np.ndarray:
    """``X`` as a float array: as it is when numeric and complete, else through :func:`make_preprocessor`.

    Categorical, text and boolean columns and missing values are encoded the way a user's Pipeline
    would (imputation, standardisation, one-hot encoding), so that a table can be described by
    :func:`automl_meta.metafeatures.describe` without preparing it first.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> encode_table(pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": ["x", "y", "x"]})).shape
    (3, 3)
    >>> encode_table([[1, 2], [3, 4]]).dtype
    dtype('float64')
    """
    from ..exceptions import TaskError

    kinds = {dt.kind for dt in X.dtypes} if isinstance(X, pd.DataFrame) else {np.asarray(X).dtype.kind}
    if "c" in kinds:
        raise TaskError("Cannot describe the task: X holds complex numbers; features must be real.")
    try:
        array = np.asarray(X, dtype=np.float64)
        if array.ndim != 2 or not np.isnan(array).any():
            return array
    except (TypeError, ValueError):
        array = None
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=object))
    if frame.ndim != 2:
        raise TaskError(f"Cannot describe the task: X must be 2-D (n_samples, n_features), got shape {frame.shape}.")
    # Object columns of numbers stay numbers; the rest become categories for the one-hot encoder.
    frame = frame.apply(lambda c: pd.to_numeric(c) if _numeric(c) else c.astype("category"))
    return np.asarray(make_preprocessor().fit_transform(frame), dtype=np.float64)


def table_fingerprint(X: object, y: object) -> str:
    """The corpus's :func:`~automl_meta.corpus.fingerprint` of any table: a DataFrame, or an array-like of
    mixed values (read as object columns)."""
    from ._task import fingerprint

    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=object))
    return fingerprint(frame, np.asarray(y))


def _numeric(column: pd.Series) -> bool:
    try:
        pd.to_numeric(column)
    except (TypeError, ValueError):
        return False
    return not (isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == bool)
