"""Real tables as tasks: random row samples, column subsets and class codes of a list of corpus tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..exceptions import TaskError
from .batch import TASK_TYPES, Task, TaskType
from .distribution import TaskDistribution
from .tabular import _range, _standardised_by

if TYPE_CHECKING:
    from ..corpus import CorpusTask


def _task_type(tasks: Sequence[Any], task_type: str | None) -> TaskType:
    """The one task type of ``tasks`` (``task_type`` when given), or a TaskError naming a task that differs."""
    if len(tasks) == 0:
        raise TaskError("CorpusTabular needs at least one corpus task; got an empty list.")
    for t in tasks:
        if not all(hasattr(t, a) for a in ("name", "task_type", "X", "y")):
            raise TaskError(f"CorpusTabular takes CorpusTask records (automl_meta.corpus), got {type(t).__name__}.")
    wanted = tasks[0].task_type if task_type is None else task_type
    if wanted not in TASK_TYPES:
        raise TaskError(f"task_type must be one of {TASK_TYPES}, got {wanted!r}.")
    wrong = [t.name for t in tasks if t.task_type != wanted]
    if wrong:
        raise TaskError(
            f"All tasks of a CorpusTabular must be {wanted} tasks; {len(wrong)} are not: {wrong[:5]}. "
            "Load one task type, e.g. load_corpus('meta-train', task_type='classification')."
        )
    return cast(TaskType, wanted)


def _encode(task: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """A table as dense floats (the ColumnTransformer a user would write), its target, and its class count."""
    from ..corpus import make_preprocessor

    X = np.asarray(make_preprocessor().fit_transform(task.X), dtype=np.float64)
    y = np.asarray(task.y)
    if len(y) != len(X) or len(y) < 2:
        raise TaskError(f"Task {task.name!r} needs at least 2 rows with one target each; got {len(X)} and {len(y)}.")
    if X.shape[1] == 0 or not np.all(np.isfinite(X)):
        raise TaskError(f"Task {task.name!r} has no usable feature or non-finite encoded values.")
    if task.task_type == "regression":
        y = y.astype(np.float64)
        if not np.all(np.isfinite(y)):
            raise TaskError(f"Task {task.name!r} has missing or infinite targets.")
        return X, y, 1
    y = y.astype(np.int64)
    n_classes = len(task.classes) if getattr(task, "classes", None) is not None else int(y.max()) + 1
    if y.min() < 0 or y.max() >= n_classes or n_classes < 2:
        raise TaskError(f"Task {task.name!r} must have class codes 0..n_classes-1 and at least 2 classes.")
    return X, y, n_classes


class CorpusTabular(TaskDistribution):
    """Tasks drawn from a list of real tables, each seen through a random sample of rows and columns.

    Each table is encoded once with :func:`automl_meta.corpus.make_preprocessor` (the imputation,
    scaling and one-hot encoding a user's Pipeline would do). Sampling a task picks a table
    uniformly, then:

    - a random subset of its encoded columns, in random order, of a width drawn uniformly from
      ``n_features`` (capped at the table's width), so wide tables are seen through subsets as the
      estimators' ensemble members see them;
    - ``shots`` support rows and ``query_shots`` query rows without replacement; a table too small
      for both keeps at least a quarter of its rows for the query and gives the rest to the support;
    - for classification, class codes relabelled by a random permutation, and a table with more than
      ``n_classes`` classes has them merged into ``n_classes`` random groups (the estimators serve more
      classes through an output code over groups of classes);
    - features standardised with the support rows' statistics and clipped to ``[-6, 6]``, and
      regression targets standardised with the support rows' statistics, as the estimators prepare
      their training data.

    Parameters
    ----------
    tasks : sequence of CorpusTask
        The tables, all of one task type (see :func:`automl_meta.corpus.load_corpus`).
    task_type : {"classification", "regression"}, optional
        Checked against every task; default: the first task's.
    n_features : int or (int, int), default=(1, 64)
        Columns per task (a range draws uniformly per task, capped at the table's encoded width).
    n_classes : int, default=10
        The most classes a task has; tables with more have their classes merged into this many groups.
    shots : int or (int, int), default=(8, 128)
        Support rows per task.
    query_shots : int, default=64
        Query rows per task.

    Attributes
    ----------
    names : list of str
        The name of each table.

    Examples
    --------
    >>> from automl_meta.corpus import load_corpus
    >>> from automl_meta.tasks import CorpusTabular
    >>> tables = load_corpus("meta-train", max_rows=300, task_type="classification")[:5]
    >>> fam = CorpusTabular(tables, n_features=(1, 8), shots=(8, 32), query_shots=16)
    >>> batch = fam.sample(4, rng=0)
    >>> tuple(batch.x_support.shape[::2]), batch.n_outputs, fam.get_config()
    ((4, 8), 10, None)
    """

    def __init__(
        self,
        tasks: Sequence[CorpusTask],
        *,
        task_type: str | None = None,
        n_features: int | tuple[int, int] = (1, 64),
        n_classes: int = 10,
        shots: int | tuple[int, int] = (8, 128),
        query_shots: int = 64,
    ) -> None:
        self.task_type = _task_type(tasks, task_type)
        self.feature_range = _range(n_features, "n_features", 1)
        self.max_classes = _range(n_classes, "n_classes", 2)[0]
        self.shot_range = _range(shots, "shots", 1)
        self.query_shots = _range(query_shots, "query_shots", 1)[0]
        self.names = [str(t.name) for t in tasks]
        self._tables = [_encode(t) for t in tasks]
        self.n_features = self.feature_range[1]
        self.n_outputs = self.max_classes if self.task_type == "classification" else 1

    def __len__(self) -> int:
        return len(self._tables)

    def _rows(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Support and query row indices: ``shots`` and ``query_shots`` rows, shrunk to fit the table."""
        k = int(rng.integers(self.shot_range[0], self.shot_range[1] + 1))
        q = min(self.query_shots, max(n - k, n // 4, 1))
        k = min(k, n - q)
        order = rng.permutation(n)
        return order[:k], order[k : k + q]

    def _labels(self, y: np.ndarray, n_classes: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Class codes permuted at random; beyond ``n_classes`` classes, merged into that many random groups."""
        c = min(n_classes, self.max_classes)
        # Permuted codes modulo c: a random relabelling, and for c < n_classes random groups of near-equal size.
        return rng.permutation(n_classes)[y] % c, c

    def sample_task(self, rng: np.random.Generator) -> Task:
        X, y, n_classes = self._tables[int(rng.integers(len(self._tables)))]
        width = X.shape[1]
        m = int(rng.integers(min(self.feature_range[0], width), min(self.feature_range[1], width) + 1))
        cols = rng.choice(width, size=m, replace=False)
        s, q = self._rows(len(y), rng)
        support = X[np.ix_(s, cols)]
        xs, xq = _standardised_by(support, support, X[np.ix_(q, cols)])
        if self.task_type == "classification":
            labels, c = self._labels(y, n_classes, rng)
            return Task(xs, labels[s], xq, labels[q], task_type="classification", n_classes=c)
        mean, std = y[s].mean(), y[s].std()
        scale = std if std > 1e-8 else 1.0
        return Task(xs, (y[s] - mean) / scale, xq, (y[q] - mean) / scale)

    def describe(self) -> dict[str, Any]:
        # No feature_names/shared_features/classes keys: the artifact's Preprocessing record reads them,
        # and an artifact meta-trained on unrelated tables must stay universal.
        return {
            **super().describe(),
            "tasks": list(self.names),
            "n_feature_range": list(self.feature_range),
            "max_classes": self.max_classes,
            "shots": list(self.shot_range),
            "query_shots": self.query_shots,
        }
