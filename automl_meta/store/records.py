"""Plain records the store hands out, and how a task and a search space are described for it."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..metafeatures import describe, fingerprint

if TYPE_CHECKING:  # Optuna is imported where distributions are encoded, not when the store is
    from numpy.typing import ArrayLike
    from optuna.distributions import BaseDistribution

#: The Optuna study user attribute holding the meta-features of the dataset a study tunes for
#: (written by ``ExperienceRecorder``, read by ``automl-meta store import-optuna``).
METAFEATURES_ATTR = "automl_meta_metafeatures"


@dataclass(frozen=True)
class TaskDescription:
    """What the store keeps about a dataset. Build one from data with :meth:`from_data`.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from automl_meta.store import TaskDescription
    >>> task = TaskDescription.from_data(*load_iris(return_X_y=True), name="iris")
    >>> task.task_type, task.n_rows, task.n_features, task.n_classes
    ('classification', 150, 4, 3)
    """

    fingerprint: str
    metafeatures: dict[str, float]
    task_type: str
    n_rows: int
    n_features: int
    n_classes: int | None = None
    name: str | None = None

    @classmethod
    def from_data(
        cls, X: ArrayLike, y: ArrayLike, *, name: str | None = None, task_type: str | None = None
    ) -> TaskDescription:
        """Fingerprint and describe ``(X, y)``; raises :class:`~automl_meta.TaskError` if it cannot be described."""
        import numpy as np

        mf = describe(X, y, task_type=task_type)
        X = np.asarray(X)
        classification = mf["simple.is_classification"] == 1.0
        return cls(
            fingerprint=fingerprint(X, y),
            metafeatures=mf,
            task_type="classification" if classification else "regression",
            n_rows=int(X.shape[0]),
            n_features=int(X.shape[1]),
            n_classes=int(mf["simple.n_classes"]) if classification else None,
            name=name,
        )

    @classmethod
    def from_metafeatures(cls, metafeatures: Mapping[str, float], *, name: str | None = None) -> TaskDescription:
        """A task known only by its meta-features (for example from a study's user attributes)."""
        from ..metafeatures import as_vector

        as_vector(metafeatures)  # complete?
        mf = {k: float(v) for k, v in metafeatures.items()}
        blob = json.dumps(mf, sort_keys=True).encode()
        classification = mf["simple.is_classification"] == 1.0
        return cls(
            fingerprint="mf-" + hashlib.sha256(blob).hexdigest()[3:],
            metafeatures=mf,
            task_type="classification" if classification else "regression",
            n_rows=int(round(math.exp(mf["simple.log_rows"]))),
            n_features=int(round(math.exp(mf["simple.log_features"]))),
            n_classes=int(mf["simple.n_classes"]) if classification else None,
            name=name,
        )


@dataclass(frozen=True)
class TaskRecord(TaskDescription):
    """A task as stored, with its database id."""

    id: int = 0


@dataclass(frozen=True)
class SearchSpaceRecord:
    """A stored search space: its id, signature and Optuna distributions."""

    id: int
    signature: str
    distributions: dict[str, BaseDistribution]


@dataclass(frozen=True)
class EvaluationRecord:
    """One stored trial."""

    id: int
    task_id: int
    search_space_id: int
    params: dict[str, Any]
    values: list[float] | None
    directions: list[str]
    state: str
    duration_seconds: float | None
    study: str
    trial_number: int
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    study_key: str = ""


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial with everything needed to store it, now or later (the spool keeps it as JSON).

    Examples
    --------
    >>> from optuna.distributions import FloatDistribution
    >>> from sklearn.datasets import load_iris
    >>> from automl_meta.store import TaskDescription
    >>> from automl_meta.store.records import TrialRecord
    >>> task = TaskDescription.from_data(*load_iris(return_X_y=True), name="iris")
    >>> record = TrialRecord(task, {"x": FloatDistribution(0, 1)}, {"x": 0.5}, [float("inf")], ["MINIMIZE"],
    ...                      "COMPLETE", "demo", "ab" * 16, 0)
    >>> TrialRecord.from_json(record.to_json()) == record
    True
    """

    task: TaskDescription
    distributions: Mapping[str, BaseDistribution]
    params: Mapping[str, Any]
    values: list[float] | None
    directions: list[str]
    state: str
    study: str
    study_key: str
    trial_number: int
    duration_seconds: float | None = None

    def to_json(self) -> str:
        task = {k: getattr(self.task, k) for k in TaskDescription.__dataclass_fields__}
        return json.dumps(
            {
                "task": task,
                "distributions": space_signature(self.distributions)[1],
                "params": dict(self.params),
                "values": encode_values(self.values),
                "directions": list(self.directions),
                "state": self.state,
                "study": self.study,
                "study_key": self.study_key,
                "trial_number": int(self.trial_number),
                "duration_seconds": self.duration_seconds,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> TrialRecord:
        d = json.loads(text)
        return cls(
            task=TaskDescription(**d["task"]),
            distributions=distributions_from_json(d["distributions"]),
            params=d["params"],
            values=decode_values(d["values"]),
            directions=d["directions"],
            state=d["state"],
            study=d["study"],
            study_key=d["study_key"],
            trial_number=d["trial_number"],
            duration_seconds=d["duration_seconds"],
        )


def space_signature(distributions: Mapping[str, BaseDistribution]) -> tuple[str, dict[str, Any]]:
    """The canonical JSON form of a search space and its sha256 (the same for the same distributions).

    Examples
    --------
    >>> from optuna.distributions import FloatDistribution, IntDistribution
    >>> from automl_meta.store.records import space_signature
    >>> a = {"lr": FloatDistribution(1e-4, 1e-1, log=True), "width": IntDistribution(8, 64)}
    >>> space_signature(a)[0] == space_signature(dict(reversed(a.items())))[0]
    True
    """
    from optuna.distributions import distribution_to_json

    canonical = {name: json.loads(distribution_to_json(d)) for name, d in sorted(distributions.items())}
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest(), canonical


def distributions_from_json(canonical: Mapping[str, Any]) -> dict[str, BaseDistribution]:
    from optuna.distributions import json_to_distribution

    return {name: json_to_distribution(json.dumps(d)) for name, d in canonical.items()}


def encode_values(values: Iterable[float] | None) -> list[Any] | None:
    """Objective values for JSON: infinities become the strings "inf" and "-inf"."""
    if values is None:
        return None
    return [v if math.isfinite(v) else ("inf" if v > 0 else ("-inf" if v < 0 else "nan")) for v in map(float, values)]


def decode_values(values: Iterable[Any] | None) -> list[float] | None:
    return None if values is None else [float(v) for v in values]
