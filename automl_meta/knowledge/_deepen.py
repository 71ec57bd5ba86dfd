"""The deepening round of a knowledge build: more TPE trials per (space, task) run, after the other rounds.

A run of the tuning round is the shared design and a few TPE trials, so a task's best configurations,
which the portfolio proposes to new tasks, are the best of a few dozen. This round goes on tuning each run:
a TPE study that starts from all of the task's results in the space (its tuning run's and the cross
round's) runs ``n`` more trials. Each finished run is one JSON line of ``<out>/<task type>/<space>.more.jsonl``
(resumable, as the other rounds), and :func:`._pack.pack` adds the lines to their blocks.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from ._build import (
    BuildSettings,
    _done,
    _run_all,
    _tasks,
    after_tuning,
    build_tasks,
    records_of,
    runs_path,
    seed_of,
    tuned,
)
from ._cross import cross_path, run_record
from ._objective import ESTIMATORS


def more_path(out: Path, task_type: str, space: str) -> Path:
    return out / task_type / f"{space}.more.jsonl"


def _deepen_pair(
    space: str, task_name: str, configs: list[dict[str, Any]], losses: list[float], n: int, settings: BuildSettings
) -> dict[str, Any]:
    """``n`` more TPE trials of ``space`` on one task, from its results so far: one JSON-ready record."""
    task = _tasks(settings.split, settings.max_rows)[task_name]
    start = time.perf_counter()
    new_configs, new_losses = tuned(space, task, configs, losses, n, seed_of(f"{space}/{task_name}/more"))
    return run_record(task, new_configs, new_losses, start)


def _check_round(out: Path, n: int) -> None:
    """Record the round's trials per run; refuse to resume a round begun with another number."""
    path = out / "more.json"
    if path.exists() and (theirs := json.loads(path.read_text())["n"]) != n:
        raise ValueError(
            f"The deepening round in {out} runs {theirs} more trials per run; this build asks for {n}. "
            f"Resume with --more {theirs}."
        )
    path.write_text(json.dumps({"n": n}) + "\n")


def build_more(out: Path, settings: BuildSettings, n: int, jobs: int = 1, progress: bool = True) -> int:
    """The deepening round (see the module's description) after the tuning and cross rounds; how many runs
    ran now.

    Raises
    ------
    ValueError
        When the tuning round is not finished, or a round begun with another ``n`` is to be resumed.
    """
    after_tuning(out, settings, "deepening")
    _check_round(out, n)
    tasks = build_tasks(settings)
    todo = []
    for task_type, spaces in ESTIMATORS.items():
        for space in spaces:
            path = more_path(out, task_type, space)
            done = _done(path)
            ran: dict[str, tuple[list, list]] = {}
            for record in records_of(runs_path(out, task_type, space)) + records_of(cross_path(out, task_type, space)):
                configs, losses = ran.setdefault(record["task"], ([], []))
                configs += record["configs"]
                losses += [math.nan if v is None else v for v in record["losses"]]
            for task in tasks:
                if task.task_type == task_type and task.name not in done:
                    todo.append((path, _deepen_pair, (space, task.name, *ran[task.name], n, settings)))
    return _run_all(todo, jobs, progress, "deepening runs")
