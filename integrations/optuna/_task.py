"""What the sampler and the recorder accept as a store and as a task, turned into the store's own types."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl_meta.store import ExperienceStore, TaskDescription

TaskLike = Any  # (X, y), a dict of meta-features, a TaskDescription, or None


def _as_store(store: str | ExperienceStore | None) -> ExperienceStore:
    """An open store: ``store`` itself, or the store at that URL (the default store for None)."""
    return store if isinstance(store, ExperienceStore) else ExperienceStore(store)


def _as_task(task: TaskLike) -> TaskDescription | None:
    """The description of ``task`` (its meta-features; computed here for ``(X, y)``), or None without a task.

    Raises :class:`~automl_meta.exceptions.TaskError` for data that cannot be described and ``TypeError``
    for anything that is not a task.
    """
    if task is None or isinstance(task, TaskDescription):
        return task
    if isinstance(task, Mapping):
        return TaskDescription.from_metafeatures(task)
    if isinstance(task, (tuple, list)) and len(task) == 2:
        return TaskDescription.from_data(*task)
    raise TypeError(
        "task must be (X, y), a dict of meta-features from automl_meta.metafeatures.describe, a "
        f"TaskDescription or None; got {type(task).__name__}."
    )
