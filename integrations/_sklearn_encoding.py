"""Encoding of missing values and categorical columns for the scikit-learn estimators (private).

The estimators accept what scikit-learn's ``HistGradientBoosting`` models accept: NaN anywhere in X,
and pandas ``category``, ``object``, string and boolean columns. Such input passes through a variant
of the corpus encoder :func:`automl_meta.corpus.make_preprocessor` (the Pipeline a user would write
for a table) before the model sees it:

- numeric columns: median imputation **with a missing-indicator column** for each column that had
  missing values at ``fit`` (whether a value was missing is often informative), then standardisation;
- categorical columns: converted to text, missing values as their own ``"missing"`` level, one-hot
  encoded with at most ``max_categories`` columns per feature; levels unseen at ``fit`` encode as
  all zeros.

Columns are picked by position, so the same encoder serves DataFrames and NumPy arrays. Numeric
input without NaN skips the encoder altogether: its results are those of the estimator without
encoding, bit for bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer


def _categorical_columns(X: Any) -> list[int]:
    """Positions of the columns of a pandas DataFrame that hold no numbers (category, object, string, bool).

    Booleans count as categories, as in :func:`automl_meta.corpus.make_preprocessor`. Any other input
    (arrays, lists) has none: its values must be numbers.
    """
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(dtypes, "__iter__"):
        return []
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype
    return [j for j, d in enumerate(dtypes) if not numeric(d) or pd.api.types.is_bool_dtype(d)]


def _as_text(X: Any) -> np.ndarray:
    """Categorical values as text, missing ones as NaN: what SimpleImputer and OneHotEncoder expect.

    Text makes a column's levels comparable (a boolean column becomes ``"True"``/``"False"``) and pandas'
    ``pd.NA`` becomes NaN, which scikit-learn's imputer recognises.
    """
    import pandas as pd

    frame = pd.DataFrame(X)
    return frame.astype(str).where(frame.notna(), np.nan).to_numpy(dtype=object)


def _make_encoder(n_columns: int, categorical: list[int]) -> ColumnTransformer:
    """An unfitted encoder of a table of ``n_columns`` columns whose ``categorical`` ones hold categories."""
    from sklearn.preprocessing import FunctionTransformer

    from automl_meta.corpus import make_preprocessor

    encoder = make_preprocessor()
    encoder.set_params(numeric__simpleimputer__add_indicator=True)
    categories = dict((name, transformer) for name, transformer, _ in encoder.transformers)["categorical"]
    categories.steps.insert(0, ("astext", FunctionTransformer(_as_text, feature_names_out="one-to-one")))
    numeric = [j for j in range(n_columns) if j not in set(categorical)]
    encoder.transformers = [
        (name, transformer, columns)
        for (name, transformer, _), columns in zip(encoder.transformers, (numeric, categorical))
    ]
    return encoder
