"""What the experience store knows for a new task: per stored search space, the nearest past tasks' results."""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution

from automl_meta.knowledge import KnowledgeBase
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


_MAX_SOURCES = 30  # past tasks kept as sources when a knowledge file is read (the nearest)

_Groups = list[tuple[dict[str, BaseDistribution], dict[Hashable, list]]]  # per space: distributions, runs per task


def _bundled_groups(
    kb: KnowledgeBase, task_type: str, prefix: str, exclude: Collection[str]
) -> tuple[_Groups, dict[Hashable, np.ndarray]]:
    """The knowledge file's blocks for tasks of ``task_type``, names prefixed, and its tasks' meta-features.

    Blocks with the same parameter names (random forests and extra trees) become one group unless the
    prefix names one of them (``extratreesclassifier__`` in a Pipeline made by ``make_pipeline``).
    """
    hint = prefix.replace("_", "").lower()
    blocks = [b for b in kb.blocks if b.task_type == task_type]
    by_names: dict[frozenset, list] = {}
    for b in blocks:
        by_names.setdefault(frozenset(b.distributions), []).append(b)
    groups: _Groups = []
    for same in by_names.values():
        named = [b for b in same if b.space.replace("_", "") in hint]
        dists: dict[str, BaseDistribution] = {}
        runs: dict[Hashable, list] = {}
        for b in named or same:
            dists.update({prefix + n: d for n, d in b.distributions.items()})
            configs = [{prefix + n: v for n, v in b.config(i).items()} for i in range(len(b.configs))]
            for t, (rows, losses) in b.runs().items():
                task = kb.tasks[t]
                if task["name"] not in exclude and task["fingerprint"] not in exclude:
                    runs[("kb", b.space, t)] = [(configs[i], float(v)) for i, v in zip(rows, losses)]
        groups.append((dists, runs))
    features: dict[Hashable, np.ndarray] = {
        ("kb", b.space, t): kb.metafeatures[t] for b in blocks for t in range(len(kb.tasks))
    }
    return groups, features


def _store_groups(
    store: ExperienceStore, exclude: Collection[str], study_name: str | None
) -> tuple[_Groups, dict[Hashable, np.ndarray]]:
    """The store's search spaces with every past task's runs in them, and the tasks' meta-features."""
    tasks = [
        t
        for t in store.tasks()
        if t.fingerprint not in exclude and t.name not in exclude and all(k in t.metafeatures for k in NAMES)
    ]
    by_space, spaces = _observations(store, [t.id for t in tasks], study_name)
    groups: _Groups = [
        (spaces[i], {("store", t): runs for t, runs in per_task.items()}) for i, per_task in sorted(by_space.items())
    ]
    return groups, {("store", t.id): as_vector(t.metafeatures) for t in tasks}


def task_type_of(task: TaskDescription) -> str:
    """ "classification" or "regression", as the task's meta-features say."""
    return "classification" if task.metafeatures.get("simple.is_classification", 0.0) >= 0.5 else "regression"


def load_knowledge(
    store: ExperienceStore,
    task: TaskDescription,
    *,
    exclude: Collection[str],
    n_neighbors: int,
    study_name: str | None,
    bundled: KnowledgeBase | None = None,
    prefix: str = "",
) -> _Knowledge | None:
    """Per search space: its distributions and every past task's observations, weighted by similarity.

    Past tasks are the store's and, with ``bundled``, the knowledge file's tasks of the same type (its
    parameter names prefixed by ``prefix``, the Pipeline step of the study's parameters); a stored space
    with the same parameter names as a block of the file joins it, so the user's own experience adds to
    the bundled knowledge. The ``n_neighbors`` tasks nearest to ``task`` (distance between standardised
    meta-features) carry weight; every other task is kept, weightless, for its best configurations
    (with a knowledge file, the nearest ``max(30, 3 * n_neighbors)`` tasks only).
    Tasks named or fingerprinted in ``exclude`` and the running study's own recorded trials
    (``study_name``: they are the study's own observations, not past knowledge) are left out. None when
    there is no completed single-objective trial to learn from.
    """
    groups, features = _store_groups(store, exclude, study_name)
    if bundled is not None:
        more, more_features = _bundled_groups(bundled, task_type_of(task), prefix, exclude)
        features.update(more_features)
        for dists, runs in more:
            same = next((g for g in groups if set(g[0]) == set(dists)), None)
            if same is None:
                groups.append((dists, runs))
            else:
                same[1].update(runs)
                same[0].update({n: d for n, d in dists.items() if n not in same[0]})
    if not groups or not features:
        return None
    all_f = np.stack(list(features.values()) + [as_vector(task.metafeatures)])
    scale = all_f.std(0)
    scale[scale == 0] = 1.0
    mine = as_vector(task.metafeatures) / scale
    knowledge: _Knowledge = []
    for dists, per_task in groups:
        ids = [i for i in per_task if len(per_task[i]) >= 2]
        if not ids:
            continue
        dist = np.array([np.linalg.norm(features[i] / scale - mine) for i in ids])
        order = np.argsort(dist, kind="stable")
        if any(isinstance(i, tuple) and i[0] == "kb" for i in ids):
            # A knowledge file holds hundreds of tasks: the nearest few are the sources, so that fitting
            # their processes on a study's first trial stays well under a second.
            order = order[: max(_MAX_SOURCES, 3 * n_neighbors)]
        near = order[:n_neighbors]
        tau = max(float(np.median(dist[near])), 1e-6)
        weights = np.where(np.isin(order, near), np.exp(-dist[order] / tau), 0.0)
        weights /= weights.sum()
        # Every task is kept for its best configurations; only the neighbours carry weight.
        sources = [
            _Source(float(w), [p for p, _ in per_task[ids[j]]], np.array([v for _, v in per_task[ids[j]]]))
            for w, j in zip(weights, order)
        ]
        knowledge.append((dists, sources))
    return knowledge or None


def match_space(knowledge: _Knowledge, query: Mapping[str, BaseDistribution]) -> int | None:
    """The stored space that serves the parameters ``query`` best, or None when none shares one of them.

    Most parameters of the same kind first, then most identical distributions (a parameter that several
    spaces share, such as ``alpha``, finds its own space by its range), then fewest parameters the query
    lacks (``alpha`` alone in a range of its own finds ridge regression rather than the elastic net),
    then most observations.
    """
    best, best_key = None, (0, 0, 0, 0)
    for index, (space, sources) in enumerate(knowledge):
        overlap = sum(1 for n, d in query.items() if n in space and _kind(space[n]) == _kind(d))
        exact = sum(1 for n, d in query.items() if space.get(n) == d)
        key = (overlap, exact, -len(set(space) - set(query)), sum(len(s.configs) for s in sources))
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


def unconditional(space: dict[str, BaseDistribution], sources: list[_Source]) -> dict[str, BaseDistribution]:
    """The space's parameters that every past configuration holds: the portfolio compares configurations
    on these (a conditional parameter, present on one branch only, would leave the others out)."""
    names = set(space)
    for source in sources:
        for config in source.configs:
            names.intersection_update(config)
    return {n: d for n, d in space.items() if n in names}
