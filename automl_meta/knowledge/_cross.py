"""The cross-evaluation round of a knowledge build: good configurations of the tuning runs, run on every task.

After the tuning round (:mod:`._build`), a task's best configurations were measured on that task only;
on any other task their loss is a surrogate's guess. The portfolio of
:class:`~automl_meta.integrations.optuna.MetaLearnedSampler` compares candidates by their regret across
tasks, so this round measures, per (task type, space), ``n`` configurations on every task: the medoids of
the tasks' best configurations (k-medoids in the unit cube: log scale where the range is, categories
one-hot), which stand for the regions where many tasks' optima lie. The configurations are chosen once
and kept in ``<out>/cross.json``, so a resumed round runs the same ones; each finished (space, task) run
is a line of ``<out>/<task type>/<space>.cross.jsonl``, in the format of the tuning runs.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..spaces import SPACES
from ._objective import cross_validated_loss


def cross_path(out: Path, task_type: str, space: str) -> Path:
    return out / task_type / f"{space}.cross.jsonl"


def unit(distributions: dict[str, Any], config: dict[str, Any]) -> np.ndarray:
    """``config`` as a point of the unit cube (log scale where the range is; categories one-hot; inactive 0.5)."""
    from optuna.distributions import CategoricalDistribution

    out: list[float] = []
    for name, d in distributions.items():
        value = config.get(name)
        if isinstance(d, CategoricalDistribution):
            out += [float(value == c) for c in d.choices]
        elif value is None:
            out.append(0.5)
        else:
            low, high, x = float(d.low), float(d.high), float(value)
            if d.log:
                low, high, x = math.log(low), math.log(high), math.log(max(x, low))
            out.append((x - low) / (high - low) if high > low else 0.5)
    return np.array(out)


def medoids(points: np.ndarray, k: int, seed: int = 0, iterations: int = 50) -> list[int]:
    """Indices of ``k`` medoids of ``points`` (k-means++ start, then alternating assignment and update).

    Examples
    --------
    >>> import numpy as np
    >>> pts = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    >>> sorted(medoids(pts, 2))
    [1, 4]
    """
    n = len(points)
    if k >= n:
        return list(range(n))
    dist = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2)
    rng = np.random.default_rng(seed)
    chosen = [int(np.argmin(dist.sum(1)))]  # the most central point first: deterministic
    while len(chosen) < k:
        d2 = dist[:, chosen].min(1) ** 2
        chosen.append(int(rng.choice(n, p=d2 / d2.sum())) if d2.sum() > 0 else len(chosen))
    for _ in range(iterations):
        label = np.argmin(dist[:, chosen], axis=1)
        new = []
        for j in range(k):
            members = np.flatnonzero(label == j)
            new.append(int(members[np.argmin(dist[np.ix_(members, members)].sum(1))]) if len(members) else chosen[j])
        if new == chosen:
            break
        chosen = new
    return sorted(set(chosen))


def _best_configs(path: Path) -> list[dict[str, Any]]:
    """The best (finite) configuration of every task in a tuning-runs file."""
    best = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            record = json.loads(line)
        except ValueError:  # a line cut short by a crash
            continue
        finite = [(v, i) for i, v in enumerate(record["losses"]) if v is not None]
        if finite:
            best.append(record["configs"][min(finite)[1]])
    return best


def choose(out: Path, runs: dict[str, dict[str, Path]], n: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per task type and space, the ``n`` configurations every task runs, from the tuning-runs files ``runs``
    (chosen once and kept in ``<out>/cross.json``, then read back)."""
    path = out / "cross.json"
    if path.exists():
        chosen = json.loads(path.read_text())
        if chosen["n"] != n:
            raise ValueError(
                f"The cross-evaluation round in {out} runs {chosen['n']} configurations per space; this build "
                f"asks for {n}. Resume with the same number, or build into another folder (--out)."
            )
        return dict(chosen["configs"])
    configs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for task_type, files in runs.items():
        configs[task_type] = {}
        for space, file in files.items():
            best = _best_configs(file)
            unique = list({json.dumps(c, sort_keys=True): c for c in best}.values())
            dists = SPACES[space].distributions()
            points = np.stack([unit(dists, c) for c in unique]) if unique else np.zeros((0, 0))
            configs[task_type][space] = [unique[i] for i in medoids(points, n)] if unique else []
    path.write_text(json.dumps({"n": n, "configs": configs}, indent=1, sort_keys=True) + "\n")
    return configs


def run_record(task: Any, configs: list[dict[str, Any]], losses: list[float], start: float) -> dict[str, Any]:
    """The JSON-ready record of one run (tuning or cross-evaluation) of ``configs`` on ``task``, begun at
    ``perf_counter()`` time ``start``; a failed fit's NaN loss is kept as null."""
    return {
        "task": task.name,
        "fingerprint": task.fingerprint,
        "rows": task.n_rows,
        "configs": configs,
        "losses": [None if not math.isfinite(v) else v for v in losses],
        "seconds": round(time.perf_counter() - start, 3),
    }


def run_cross(space: str, task: Any, configs: list[dict[str, Any]]) -> dict[str, Any]:
    """Run ``configs`` of ``space`` on one corpus task: one JSON-ready record, as a tuning run's."""
    start = time.perf_counter()
    losses = [cross_validated_loss(space, task.task_type, c, task.X, task.y) for c in configs]
    return run_record(task, configs, losses, start)
