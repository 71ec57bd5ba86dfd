"""Family mode: meta-train an artifact specialised to a user's family of related datasets."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..artifacts import MetaArtifact
from ..exceptions import TaskError
from ..learners import MetaSGD
from ..models import TabularNet
from ..tasks import DatasetTasks, from_datasets
from .trainer import ARTIFACT_NAME, MetaTrainer


def _stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    std = a.std(0)
    return a.mean(0), np.where(std > 1e-12, std, 1.0)


def _scale_family(tasks: DatasetTasks) -> tuple[DatasetTasks, dict[str, Any]]:
    """The tasks standardised for meta-training, and what the artifact's Preprocessing keeps of the family."""
    family: dict[str, Any] = {"classes": None if tasks.classes_ is None else tuple(np.asarray(tasks.classes_).tolist())}
    if tasks.shared_features:
        x_mean, x_scale = _stats(np.concatenate([X for X, _ in tasks.datasets]))
        family.update(feature_mean=tuple(x_mean.tolist()), feature_scale=tuple(x_scale.tolist()))
        if tasks.task_type == "regression":
            y_all = np.concatenate([y.reshape(len(y), -1) for _, y in tasks.datasets])
            y_mean, y_scale = _stats(y_all)
            family.update(target_mean=tuple(y_mean.tolist()), target_scale=tuple(y_scale.tolist()))
        return tasks.map(
            lambda X, y: (
                (X - x_mean) / x_scale,
                y if tasks.task_type == "classification" else (y - y_mean.squeeze()) / y_scale.squeeze(),
            )
        ), family

    def per_dataset(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # unrelated tables: each is standardised on its own, as the estimators do at fit time
        m, s = _stats(X)
        if tasks.task_type == "regression":
            ym, ys = _stats(y.reshape(len(y), -1))
            y = ((y.reshape(len(y), -1) - ym) / ys).reshape(y.shape)
        return (X - m) / s, y

    return tasks.map(per_dataset), family


def meta_fit(
    tasks: DatasetTasks | Sequence[tuple[Any, Any]],
    *,
    shots: int = 10,
    iterations: int = 2000,
    inner_steps: int = 3,
    hidden: int = 64,
    depth: int = 2,
    meta_batch_size: int = 16,
    outer_lr: float = 1e-3,
    n_validation_tasks: int = 50,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    seed: int = 0,
    verbose: int = 1,
) -> MetaArtifact:
    """Meta-train on related datasets (one per store, patient, sensor, ...) for their new members.

    The artifact starts new members of the family from an initialisation and step sizes learned
    on the others; pass it to :class:`~automl_meta.integrations.sklearn.MetaLearnedClassifier` or
    :class:`~automl_meta.integrations.sklearn.MetaLearnedRegressor`, or call its ``adapt``. When the
    datasets share their features (tasks from :func:`~automl_meta.tasks.from_groups`, or
    ``from_datasets(..., shared_features=True)``), features and targets are standardised with
    statistics of the whole family, which the artifact keeps (its ``preprocessing``), so a new member
    with only a few rows is scaled consistently; such an artifact serves only those features.

    Parameters
    ----------
    tasks : DatasetTasks or list of (X, y)
        The family; a list is read with ``from_datasets(tasks, shots=shots, shared_features=True)``.
    shots : int, default=10
        Support rows per task in meta-training (for a list of datasets).
    iterations, meta_batch_size, outer_lr, n_validation_tasks, checkpoint_dir, resume, seed, verbose
        Passed to :class:`~automl_meta.MetaTrainer`.
    inner_steps : int, default=3
        Adaptation steps in meta-training. The estimators' default is whichever of 1, 2 and 5
        times this scores best on the validation tasks.
    hidden, depth : int
        Size of the :class:`~automl_meta.models.TabularNet` backbone.

    Returns
    -------
    MetaArtifact

    Examples
    --------
    >>> import numpy as np, pandas as pd, automl_meta as am
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"store": np.repeat(np.arange(12), 30), "price": rng.normal(size=360)})
    >>> df["sales"] = -2 * df["price"] + df["store"] % 3 + rng.normal(scale=0.1, size=360)
    >>> tasks = am.tasks.from_groups(df, group="store", target="sales", shots=5, query_shots=10)
    >>> artifact = am.meta_fit(tasks, iterations=50, verbose=0)
    >>> artifact.preprocessing.feature_names
    ('price',)
    """
    tasks = tasks if isinstance(tasks, DatasetTasks) else from_datasets(tasks, shots=shots, shared_features=True)
    if len(tasks) < 2:
        raise TaskError(f"meta_fit needs a family of at least 2 datasets, got {len(tasks)}.")
    scaled, family = _scale_family(tasks)
    model = TabularNet(
        hidden=hidden, depth=depth, max_features=tasks.n_features, max_outputs=tasks.n_outputs, seed=seed
    )
    candidates = (inner_steps, 2 * inner_steps, 5 * inner_steps) if n_validation_tasks else None
    artifact = MetaTrainer(
        MetaSGD(model, inner_steps=inner_steps, inner_lr=0.01),
        scaled,
        iterations=iterations,
        meta_batch_size=meta_batch_size,
        outer_lr=outer_lr,
        n_validation_tasks=n_validation_tasks,
        eval_every=max(1, iterations // 20),
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=max(1, iterations // 10),
        resume=resume,
        seed=seed,
        verbose=verbose,
        adapt_steps_candidates=candidates,
    ).fit()
    artifact.preprocessing = dataclasses.replace(artifact.preprocessing, **family)
    artifact.training.setdefault("adapt_steps", inner_steps)
    if checkpoint_dir is not None:  # the trainer's copy lacks the family's scaling and classes
        artifact.save(os.path.join(checkpoint_dir, ARTIFACT_NAME))
    return artifact
