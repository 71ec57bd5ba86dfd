"""User data as tasks: one task per group of a table, or per dataset of a list."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import ArrayLike

from ..exceptions import TaskError
from .batch import TASK_TYPES, Task, TaskType
from .distribution import TaskDistribution, check_count

if TYPE_CHECKING:
    import pandas as pd

_Pairs = list[tuple[np.ndarray, np.ndarray]]  # one (X, y) per task


def _infer_task_type(y: np.ndarray) -> str:
    from sklearn.utils.multiclass import type_of_target  # scikit-learn takes seconds to import: only when needed

    kind = type_of_target(y)
    if kind in ("binary", "multiclass"):
        return "classification"
    if kind in ("continuous", "continuous-multioutput"):
        return "regression"
    raise TaskError(
        f"Cannot tell whether the target is for classification or regression (sklearn sees "
        f"{kind!r}); pass task_type='classification' or 'regression'."
    )


class DatasetTasks(TaskDistribution):
    """Tasks drawn from a fixed list of datasets, each split anew into support and query.

    Sampling a task picks one dataset uniformly at random and draws ``shots``
    support rows and ``query_shots`` query rows from it without replacement.
    Build one with :func:`from_groups` or :func:`from_datasets`.

    Attributes
    ----------
    names : list of str
        The name of each dataset (the group value, or its index).
    classes_ : ndarray or None
        For classification, the original label of each encoded class.
    feature_names : list of str or None
        The shared feature columns (tasks made from one table), else None.
    shared_features : bool
        Whether every task has the same features in the same order (a family of related
        datasets), rather than unrelated tables of their own.
    """

    def __init__(
        self,
        datasets: _Pairs,
        names: Sequence[str],
        *,
        task_type: TaskType,
        shots: int,
        query_shots: int | None,
        classes: np.ndarray | None = None,
        feature_names: Sequence[object] | None = None,
        shared_features: bool = False,
    ) -> None:
        self.datasets, self.names, self.task_type = datasets, names, task_type
        self.feature_names = None if feature_names is None else [str(f) for f in feature_names]
        self.shared_features = bool(shared_features)
        self.shots = check_count(shots, "shots")
        self.query_shots = None if query_shots is None else check_count(query_shots, "query_shots")
        need = self.shots + (self.query_shots or 1)
        small = [(n, len(y)) for n, (_, y) in zip(names, datasets) if len(y) < need]
        if small:
            listed = ", ".join(f"{n!r} ({m} rows)" for n, m in small[:10])
            raise TaskError(
                f"shots={self.shots} plus {self.query_shots or 1} query row(s) needs {need} rows per task, "
                f"but {len(small)} task(s) have fewer: {listed}. Lower shots/query_shots or drop those tasks."
            )
        self.classes_ = classes
        self.n_features = max(X.shape[1] for X, _ in datasets)
        if task_type == "classification":
            self.n_outputs = len(classes) if classes is not None else max(int(y.max()) + 1 for _, y in datasets)
        else:
            self.n_outputs = max(1 if y.ndim == 1 else y.shape[1] for _, y in datasets)

    def __len__(self) -> int:
        return len(self.datasets)

    def sample_task(self, rng: np.random.Generator) -> Task:
        i = int(rng.integers(len(self.datasets)))
        return self.split(i, rng)

    def split(self, index: int, rng: np.random.Generator) -> Task:
        """Task ``index`` with a fresh random support/query split."""
        X, y = self.datasets[index]
        order = rng.permutation(len(y))
        k = self.shots
        q = len(y) - k if self.query_shots is None else self.query_shots
        s_idx, q_idx = order[:k], order[k : k + q]
        n_classes = None
        if self.task_type == "classification":
            # Shared labels keep the family's class count; unrelated datasets have their own.
            n_classes = self.n_outputs if self.classes_ is not None else int(y.max()) + 1
        return Task(X[s_idx], y[s_idx], X[q_idx], y[q_idx], task_type=self.task_type, n_classes=n_classes)

    def describe(self) -> dict[str, Any]:
        # feature_names and shared_features are read back by the artifact's Preprocessing record.
        return {
            **super().describe(),
            "n_tasks": len(self.datasets),
            "shots": self.shots,
            "query_shots": self.query_shots,
            "feature_names": self.feature_names,
            "shared_features": self.shared_features,
        }

    def map(self, transform: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]) -> DatasetTasks:
        """The same tasks with ``transform(X, y) -> (X, y)`` applied to every dataset."""
        return DatasetTasks(
            [transform(X, y) for X, y in self.datasets],
            self.names,
            task_type=self.task_type,
            shots=self.shots,
            query_shots=self.query_shots,
            classes=self.classes_,
            feature_names=self.feature_names,
            shared_features=self.shared_features,
        )


def _check_xy(X: ArrayLike, y: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TaskError(f"Features of {name} are not numeric ({exc}); encode categorical columns first.") from None
    y = np.asarray(y)
    if X.ndim != 2:
        raise TaskError(f"X of {name} must be 2-D (n_samples, n_features), got shape {X.shape}.")
    if len(X) == 0:
        raise TaskError(f"{name} is empty: every task needs rows.")
    if len(y) != len(X):
        raise TaskError(f"{name}: X has {len(X)} rows but y has {len(y)}; they must match.")
    if not np.all(np.isfinite(X)):
        raise TaskError(f"{name}: X contains NaN or infinite values; impute or drop them first.")
    if y.dtype.kind in "fc" and not np.all(np.isfinite(y)):
        raise TaskError(f"{name}: y contains NaN or infinite values; drop those rows first.")
    return X, y


def _finish(
    datasets: _Pairs,
    names: list[str],
    task_type: str | None,
    shots: int,
    query_shots: int | None,
    shared_classes: bool,
    feature_names: Sequence[object] | None = None,
    shared_features: bool = False,
) -> DatasetTasks:
    if task_type is None:
        task_type = _infer_task_type(np.concatenate([np.ravel(y) for _, y in datasets]))
    if task_type not in TASK_TYPES:
        raise TaskError(f"task_type must be one of {TASK_TYPES} or None, got {task_type!r}.")
    classes = None
    if task_type == "classification":
        if shared_classes:  # groups of one table share the meaning of their labels
            classes = np.unique(np.concatenate([y for _, y in datasets]))
            datasets = [(X, np.searchsorted(classes, y)) for X, y in datasets]
        else:  # unrelated datasets: each gets its own 0..c-1 encoding
            datasets = [(X, np.unique(y, return_inverse=True)[1]) for X, y in datasets]
    else:
        datasets = [(X, y.astype(np.float64)) for X, y in datasets]
    # cast: checked just above to be one of TASK_TYPES
    return DatasetTasks(
        datasets,
        names,
        task_type=cast(TaskType, task_type),
        shots=shots,
        query_shots=query_shots,
        classes=classes,
        feature_names=feature_names,
        shared_features=shared_features,
    )


def _check_table(df: Any, group: str, targets: list[str], features: Sequence[str] | None) -> list[str]:
    """The feature columns of a table of groups, after checking that its columns and group values are usable."""
    missing = [c for c in [group, *targets, *(features or [])] if c not in df.columns]
    if missing:
        raise TaskError(f"Columns {missing} are not in the table; it has {list(df.columns)}.")
    features = [c for c in df.columns if c != group and c not in targets] if features is None else list(features)
    if not features:
        raise TaskError("No feature columns: the table has only the group and target columns.")
    if len(df) == 0:
        raise TaskError("The table is empty.")
    missing_group = int(df[group].isna().sum())
    if missing_group:
        raise TaskError(
            f"{missing_group} row(s) have no value in the group column {group!r}; fill or drop them "
            "first (they would belong to no task)."
        )
    return features


def from_groups(
    df: pd.DataFrame,
    *,
    group: str,
    target: str | Sequence[str],
    features: Sequence[str] | None = None,
    shots: int = 10,
    query_shots: int | None = None,
    task_type: str | None = None,
) -> DatasetTasks:
    """One task per group of a table (one per store, patient, sensor, ...).

    Parameters
    ----------
    df : pandas.DataFrame
    group : str
        Column whose values define the tasks.
    target : str or list of str
        Target column(s).
    features : list of str, optional
        Feature columns (default: every other column). They must be numeric.
    shots : int, default=10
        Support rows drawn per task.
    query_shots : int, optional
        Query rows drawn per task (default: all remaining rows of the group).
    task_type : {"classification", "regression"}, optional
        Inferred from the target when omitted.

    Returns
    -------
    DatasetTasks

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from automl_meta.tasks import from_groups
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"store": np.repeat(["a", "b", "c"], 30),
    ...                    "price": rng.normal(size=90), "sales": rng.normal(size=90)})
    >>> tasks = from_groups(df, group="store", target="sales", shots=5)
    >>> len(tasks), tasks.task_type, tasks.sample(2, rng=0).x_support.shape[1]
    (3, 'regression', 5)
    """
    targets = [target] if isinstance(target, str) else list(target)
    features = _check_table(df, group, targets, features)
    datasets, names = [], []
    for name, part in df.groupby(group, sort=True):
        y = part[targets[0]].to_numpy() if len(targets) == 1 else part[targets].to_numpy()
        datasets.append(_check_xy(part[features].to_numpy(), y, f"group {name!r}"))
        names.append(str(name))
    return _finish(
        datasets,
        names,
        task_type,
        shots,
        query_shots,
        shared_classes=True,
        feature_names=features,
        shared_features=True,
    )


def from_datasets(
    datasets: Sequence[tuple[Any, Any]],
    *,
    shots: int = 10,
    query_shots: int | None = None,
    task_type: str | None = None,
    names: Sequence[str] | None = None,
    shared_features: bool = False,
) -> DatasetTasks:
    """One task per ``(X, y)`` pair; datasets may have different feature counts (they are padded).

    Classification labels are encoded per dataset, since unrelated datasets do
    not share the meaning of their labels. Pass ``shared_features=True`` for a
    family of related datasets whose columns mean the same in each (then they must
    have the same width).

    Examples
    --------
    >>> import numpy as np
    >>> from automl_meta.tasks import from_datasets
    >>> rng = np.random.default_rng(0)
    >>> data = [(rng.normal(size=(40, 3)), rng.integers(0, 2, 40)),
    ...         (rng.normal(size=(50, 5)), rng.integers(0, 3, 50))]
    >>> tasks = from_datasets(data, shots=8, query_shots=16)
    >>> tasks.task_type, tasks.n_features, tasks.n_outputs
    ('classification', 5, 3)
    """
    if len(datasets) == 0:
        raise TaskError("from_datasets needs at least one (X, y) pair.")
    names = [str(i) for i in range(len(datasets))] if names is None else [str(n) for n in names]
    if len(names) != len(datasets):
        raise TaskError(f"Got {len(names)} names for {len(datasets)} datasets.")
    checked = []
    for n, pair in zip(names, datasets):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TaskError(f"Dataset {n!r} must be an (X, y) pair.")
        checked.append(_check_xy(pair[0], pair[1], f"dataset {n!r}"))
    if shared_features and len({X.shape[1] for X, _ in checked}) > 1:
        raise TaskError(
            f"shared_features=True needs datasets of one width; got widths {sorted({X.shape[1] for X, _ in checked})}."
        )
    return _finish(
        checked, names, task_type, shots, query_shots, shared_classes=shared_features, shared_features=shared_features
    )
