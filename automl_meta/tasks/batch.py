"""Tasks and batches of tasks.

A :class:`Task` holds one task's support set (the data a learner adapts on)
and query set (the data the adapted learner is scored on). A
:class:`TaskBatch` stacks many tasks on a leading task axis so a whole
meta-batch is adapted at once with :func:`torch.vmap`. Ragged tasks (different
numbers of samples, features or classes) are zero-padded to a common shape and
carry masks that say which entries are real.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import numpy as np
import torch

from ..exceptions import TaskError

TaskType = Literal["regression", "classification"]
TASK_TYPES = ("regression", "classification")


@dataclass(frozen=True)
class Task:
    """One task: a support set to adapt on and a query set to score on.

    Parameters
    ----------
    x_support, y_support : array-like of shape (n_support, n_features) and (n_support,) or (n_support, n_outputs)
        The data the learner adapts on.
    x_query, y_query : array-like
        The data the adapted learner is evaluated on. ``n_features`` must match the support set.
    task_type : {"regression", "classification"}
        For classification, ``y`` holds integer labels in ``[0, n_classes)``.
    n_classes : int, optional
        Number of classes of a classification task (default: ``max(y) + 1``).

    Examples
    --------
    >>> import numpy as np
    >>> from automl_meta.tasks import Task
    >>> t = Task(np.zeros((5, 2)), np.arange(5.0), np.ones((3, 2)), np.arange(3.0))
    >>> t.n_features, t.n_support, t.n_query
    (2, 5, 3)
    """

    x_support: np.ndarray
    y_support: np.ndarray
    x_query: np.ndarray
    y_query: np.ndarray
    task_type: TaskType = "regression"
    n_classes: int | None = None

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise TaskError(f"task_type must be one of {TASK_TYPES}, got {self.task_type!r}.")
        ydtype = np.int64 if self.task_type == "classification" else np.float64
        arrays = {}
        for part in ("support", "query"):
            x = np.asarray(getattr(self, f"x_{part}"), dtype=np.float64)
            y = np.asarray(getattr(self, f"y_{part}"))
            if x.ndim != 2:
                raise TaskError(f"x_{part} must be 2-D (n_samples, n_features), got shape {x.shape}.")
            if x.shape[0] == 0:
                raise TaskError(f"The {part} set is empty: every task needs at least one {part} sample.")
            if y.shape[0] != x.shape[0]:
                raise TaskError(f"x_{part} has {x.shape[0]} rows but y_{part} has {y.shape[0]}: they must match.")
            if not np.all(np.isfinite(x)):
                raise TaskError(f"x_{part} contains NaN or infinite values; impute or drop them first.")
            if self.task_type == "classification":
                if y.ndim != 1:
                    raise TaskError(f"y_{part} of a classification task must be 1-D labels, got shape {y.shape}.")
                if not np.all(np.isfinite(y.astype(np.float64))) or np.any(y.astype(np.float64) % 1 != 0):
                    raise TaskError(f"y_{part} must hold integer class labels in [0, n_classes).")
                y = y.astype(ydtype)
                if y.min() < 0:
                    raise TaskError(f"y_{part} has negative labels; encode classes as 0..n_classes-1.")
            else:
                y = y.astype(ydtype)
                if y.ndim == 1:
                    y = y[:, None]
                if y.ndim != 2:
                    raise TaskError(f"y_{part} must be 1-D or 2-D, got shape {y.shape}.")
                if not np.all(np.isfinite(y)):
                    raise TaskError(f"y_{part} contains NaN or infinite values; drop those rows first.")
            arrays[f"x_{part}"], arrays[f"y_{part}"] = x, y
        if arrays["x_support"].shape[1] != arrays["x_query"].shape[1]:
            raise TaskError(
                f"Support and query sets have different feature counts "
                f"({arrays['x_support'].shape[1]} vs {arrays['x_query'].shape[1]})."
            )
        if self.task_type == "regression" and arrays["y_support"].shape[1] != arrays["y_query"].shape[1]:
            raise TaskError("Support and query targets have different numbers of outputs.")
        for k, v in arrays.items():
            object.__setattr__(self, k, v)
        if self.task_type == "classification":
            seen = int(max(arrays["y_support"].max(), arrays["y_query"].max())) + 1
            n = seen if self.n_classes is None else int(self.n_classes)
            if n < seen:
                raise TaskError(f"n_classes={n} but labels go up to {seen - 1}.")
            object.__setattr__(self, "n_classes", n)

    @property
    def n_features(self) -> int:
        return self.x_support.shape[1]

    @property
    def n_support(self) -> int:
        return self.x_support.shape[0]

    @property
    def n_query(self) -> int:
        return self.x_query.shape[0]

    @property
    def n_outputs(self) -> int:
        """Outputs of the model: targets for regression, classes for classification."""
        if self.task_type == "classification":
            assert self.n_classes is not None  # __post_init__ sets it for classification
            return self.n_classes
        return self.y_support.shape[1]


@dataclass(frozen=True)
class TaskBatch:
    """Tasks stacked on a leading task axis, padded to a common shape, with masks.

    Attributes
    ----------
    x_support, x_query : Tensor of shape (n_tasks, n_samples, n_features)
    y_support, y_query : Tensor
        ``(n_tasks, n_samples, n_outputs)`` floats for regression,
        ``(n_tasks, n_samples)`` integer labels for classification.
    support_mask, query_mask : Tensor of shape (n_tasks, n_samples)
        1.0 for real samples, 0.0 for padding.
    feature_mask : Tensor of shape (n_tasks, n_features)
        1.0 for real features, 0.0 for padding (padded features are zero).
    class_mask : Tensor of shape (n_tasks, n_outputs)
        1.0 for outputs the task uses (its classes, or its regression targets).
    task_type : {"regression", "classification"}

    Examples
    --------
    >>> import numpy as np
    >>> from automl_meta.tasks import Task, TaskBatch
    >>> a = Task(np.zeros((4, 2)), np.zeros(4), np.zeros((2, 2)), np.zeros(2))
    >>> b = Task(np.zeros((6, 3)), np.zeros(6), np.zeros((2, 3)), np.zeros(2))
    >>> batch = TaskBatch.from_tasks([a, b])
    >>> tuple(batch.x_support.shape), batch.support_mask.sum(1).tolist()
    ((2, 6, 3), [4.0, 6.0])
    """

    x_support: torch.Tensor
    y_support: torch.Tensor
    x_query: torch.Tensor
    y_query: torch.Tensor
    support_mask: torch.Tensor
    query_mask: torch.Tensor
    feature_mask: torch.Tensor
    class_mask: torch.Tensor
    task_type: TaskType = "regression"

    def __len__(self) -> int:
        return self.x_support.shape[0]

    @property
    def n_features(self) -> int:
        return self.x_support.shape[-1]

    @property
    def n_outputs(self) -> int:
        return self.class_mask.shape[-1]

    def tensors(self) -> dict[str, torch.Tensor]:
        """The batch's tensors by field name (every one has the task axis first)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "task_type"}

    def support(self) -> dict[str, torch.Tensor]:
        """The support half as ``{"x", "y", "mask", "class_mask"}``, the form the engine consumes."""
        return {"x": self.x_support, "y": self.y_support, "mask": self.support_mask, "class_mask": self.class_mask}

    def query(self) -> dict[str, torch.Tensor]:
        """The query half as ``{"x", "y", "mask", "class_mask"}``."""
        return {"x": self.x_query, "y": self.y_query, "mask": self.query_mask, "class_mask": self.class_mask}

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> TaskBatch:
        """Move to ``device`` and cast the floating-point tensors to ``dtype``."""
        out: dict[str, Any] = {}  # Any: mypy checks replace(**out) against task_type too
        for name, t in self.tensors().items():
            t = t.to(device) if device is not None else t
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            out[name] = t
        return replace(self, **out)

    def select(self, index: int | slice | torch.Tensor) -> TaskBatch:
        """The sub-batch of tasks at ``index`` (an int, slice or index tensor)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        tensors: dict[str, Any] = {k: v[index] for k, v in self.tensors().items()}  # Any: as in to()
        return replace(self, **tensors)

    @classmethod
    def from_tasks(cls, tasks: list[Task], *, n_features: int | None = None, n_outputs: int | None = None) -> TaskBatch:
        """Pad and stack ``tasks`` into one batch.

        ``n_features`` and ``n_outputs`` fix the padded widths (default: the largest in ``tasks``).
        """
        if not tasks:
            raise TaskError("Cannot build a TaskBatch from an empty list of tasks.")
        task_type = tasks[0].task_type
        if any(t.task_type != task_type for t in tasks):
            raise TaskError("All tasks in a batch must have the same task_type.")
        F = max(t.n_features for t in tasks) if n_features is None else n_features
        n_out = max(t.n_outputs for t in tasks) if n_outputs is None else n_outputs
        if any(t.n_features > F for t in tasks):
            raise TaskError(f"A task has more than n_features={F} features.")
        if any(t.n_outputs > n_out for t in tasks):
            raise TaskError(f"A task has more than n_outputs={n_out} outputs/classes.")
        S = max(t.n_support for t in tasks)
        Q = max(t.n_query for t in tasks)
        T = len(tasks)
        cls_ = task_type == "classification"
        xs, xq = np.zeros((T, S, F)), np.zeros((T, Q, F))
        ys = np.zeros((T, S), np.int64) if cls_ else np.zeros((T, S, n_out))
        yq = np.zeros((T, Q), np.int64) if cls_ else np.zeros((T, Q, n_out))
        ms, mq, mf, mc = np.zeros((T, S)), np.zeros((T, Q)), np.zeros((T, F)), np.zeros((T, n_out))
        for i, t in enumerate(tasks):
            xs[i, : t.n_support, : t.n_features] = t.x_support
            xq[i, : t.n_query, : t.n_features] = t.x_query
            if cls_:
                ys[i, : t.n_support] = t.y_support
                yq[i, : t.n_query] = t.y_query
            else:
                ys[i, : t.n_support, : t.n_outputs] = t.y_support
                yq[i, : t.n_query, : t.n_outputs] = t.y_query
            ms[i, : t.n_support] = 1.0
            mq[i, : t.n_query] = 1.0
            mf[i, : t.n_features] = 1.0
            mc[i, : t.n_outputs] = 1.0
        f32 = torch.float32
        return cls(
            x_support=torch.as_tensor(xs, dtype=f32),
            y_support=torch.as_tensor(ys) if cls_ else torch.as_tensor(ys, dtype=f32),
            x_query=torch.as_tensor(xq, dtype=f32),
            y_query=torch.as_tensor(yq) if cls_ else torch.as_tensor(yq, dtype=f32),
            support_mask=torch.as_tensor(ms, dtype=f32),
            query_mask=torch.as_tensor(mq, dtype=f32),
            feature_mask=torch.as_tensor(mf, dtype=f32),
            class_mask=torch.as_tensor(mc, dtype=f32),
            task_type=task_type,
        )
