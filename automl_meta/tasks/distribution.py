"""The task-distribution interface every family of tasks implements."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from .._validation import check_int_at_least
from ..exceptions import TaskError
from .batch import Task, TaskBatch, TaskType


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A numpy Generator from a Generator, a seed, or None (fresh entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def check_count(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or a TaskError saying what was wrong."""
    return check_int_at_least(value, name, minimum, error=TaskError)


class TaskDistribution(abc.ABC):
    """A family of tasks to meta-train on.

    Subclasses set :attr:`task_type`, :attr:`n_features` and :attr:`n_outputs`
    (the padded widths of the batches they produce) and implement
    :meth:`sample_task`; :meth:`sample` stacks tasks into a :class:`TaskBatch`.
    Sampling is a pure function of the random generator passed in, which is
    what makes meta-training reproducible and resumable.
    """

    task_type: TaskType
    n_features: int
    n_outputs: int

    @abc.abstractmethod
    def sample_task(self, rng: np.random.Generator) -> Task:
        """Draw one task."""

    def sample(self, n_tasks: int, rng: np.random.Generator | int | None = None) -> TaskBatch:
        """Draw ``n_tasks`` tasks as one padded :class:`TaskBatch`.

        Parameters
        ----------
        n_tasks : int
            Number of tasks.
        rng : numpy.random.Generator or int, optional
            Source of randomness; the same seed gives the same batch.
        """
        n_tasks = check_count(n_tasks, "n_tasks")
        rng = as_generator(rng)
        tasks = [self.sample_task(rng) for _ in range(n_tasks)]
        return TaskBatch.from_tasks(tasks, n_features=self.n_features, n_outputs=self.n_outputs)

    def get_config(self) -> dict[str, Any] | None:
        """Constructor arguments that rebuild this family (:func:`automl_meta.tasks.from_config`),
        or None for families built from data (they cannot be rebuilt from a description)."""
        return None

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description of the family, stored in artifact manifests."""
        return {
            "family": type(self).__name__,
            "task_type": self.task_type,
            "n_features": self.n_features,
            "n_outputs": self.n_outputs,
            "config": self.get_config(),
        }
