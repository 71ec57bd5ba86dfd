"""What the experience store knows for a new task: per stored search space, the nearest past tasks' results."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution

from automl_meta.metafeatures import NAMES, as_vector
from automl_meta.store import ExperienceStore, TaskDescription

from ._search_space import _Encoding, _kind
from ._transfer import FittedProcesses, _SourceModel, copula

_Knowledge = list[tuple[dict[str, BaseDistribution], list["_Source"]]]  # per stored space: distributions, sources


@dataclass
class _Source:
    """Past observations of one neighbour task in one stored search space."""

    weight: float  # similarity to the new task; the weights of a space's sources sum to 1
    configs: list[dict[str, Any]]
    values: np.ndarray  # losses (maximised objectives negated): lower is better


def _observations(
    store: ExperienceStore, task_ids: list[int], study_name: str | None
) -> tuple[dict[int, dict[int, list]], dict[int, dict[str, BaseDistribution]]]:
    """Per stored space and task, the finite single-objective results as (params, loss); and each space."""
    evaluations = store.evaluations(task_ids, states=["COMPLETE"]) if task_ids else []
    by_space: dict[int, dict[int, list]] = {}
    spaces: dict[int, dict[str, BaseDistribution]] = {}
    for e in evaluations:
        if e.values is None or len(e.values) != 1 or not math.isfinite(e.values[0]) or e.study == study_name:
            continue
        sign = -1.0 if e.directions and e.directions[0].upper().endswith("MAXIMIZE") else 1.0
        by_space.setdefault(e.search_space_id, {}).setdefault(e.task_id, []).append((e.params, sign * e.values[0]))
        spaces[e.search_space_id] = e.distributions
    return by_space, spaces


def load_knowledge(
    store: ExperienceStore, task: TaskDescription, *, exclude: Collection[str], n_neighbors: int, study_name: str | None
) -> _Knowledge | None:
    """Per stored search space: its distributions and every past task's observations, weighted by similarity.

    The ``n_neighbors`` tasks nearest to ``task`` (distance between standardised meta-features) carry
    weight; every other task is kept, weightless, for its best configurations. Tasks named or
    fingerprinted in ``exclude`` and the running study's own recorded trials (``study_name``: they are
    the study's own observations, not past knowledge) are left out. None when the store has no
    completed single-objective trial to learn from.
    """
    tasks = [
        t
        for t in store.tasks()
        if t.fingerprint not in exclude and t.name not in exclude and all(k in t.metafeatures for k in NAMES)
    ]
    by_space, spaces = _observations(store, [t.id for t in tasks], study_name)
    if not by_space:
        return None
    features = {t.id: as_vector(t.metafeatures) for t in tasks}
    all_f = np.stack(list(features.values()) + [as_vector(task.metafeatures)])
    scale = all_f.std(0)
    scale[scale == 0] = 1.0
    mine = as_vector(task.metafeatures) / scale
    knowledge: _Knowledge = []
    for space_id, per_task in sorted(by_space.items()):
        ids = [i for i in per_task if len(per_task[i]) >= 2]
        if not ids:
            continue
        dist = np.array([np.linalg.norm(features[i] / scale - mine) for i in ids])
        order = np.argsort(dist, kind="stable")
        near = order[:n_neighbors]
        tau = max(float(np.median(dist[near])), 1e-6)
        weights = np.where(np.isin(order, near), np.exp(-dist[order] / tau), 0.0)
        weights /= weights.sum()
        # Every task is kept for its best configurations; only the neighbours carry weight.
        sources = [
            _Source(float(w), [p for p, _ in per_task[ids[j]]], np.array([v for _, v in per_task[ids[j]]]))
            for w, j in zip(weights, order)
        ]
        knowledge.append((spaces[space_id], sources))
    return knowledge


def match_space(knowledge: _Knowledge, query: Mapping[str, BaseDistribution]) -> int | None:
    """The stored space that serves the parameters ``query`` best, or None when none shares one of them.

    Most parameters of the same kind first, then most identical distributions, then most observations.
    """
    best, best_key = None, (0, 0, 0)
    for index, (space, sources) in enumerate(knowledge):
        overlap = sum(1 for n, d in query.items() if n in space and _kind(space[n]) == _kind(d))
        exact = sum(1 for n, d in query.items() if space.get(n) == d)
        key = (overlap, exact, sum(len(s.configs) for s in sources))
        if overlap and key > best_key:
            best, best_key = index, key
    return best


def source_models(encoding: _Encoding, sources: list[_Source], processes: FittedProcesses) -> list[_SourceModel]:
    """Every past task's surrogate over the encoded space (tasks with fewer than two results in it left out).

    When no neighbour ran the space's parameters, every past task counts alike.
    """
    models = []
    for source in sources:  # every stored task: the study's results may vouch for any
        rows = [(u, v) for c, v in zip(source.configs, source.values) if (u := encoding.unit(c)) is not None]
        if len(rows) < 2:
            continue
        U, v = np.stack([u for u, _ in rows]), np.array([v for _, v in rows])
        spread = float(v.max() - v.min())
        regret = (v - v.min()) / spread if spread > 0 else np.zeros_like(v)
        # A length scale per parameter: past tasks have enough trials to tell which parameters matter.
        gp = processes.fit(encoding.features(U), copula(v), per_dimension=True)
        models.append(_SourceModel(source.weight, gp, U, regret))
    total = sum(m.weight for m in models)
    for m in models:
        m.weight = m.weight / total if total > 0 else 1.0 / len(models)
    return models
