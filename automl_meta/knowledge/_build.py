"""Building a knowledge base: tune every space on every meta-training task, then pack the results.

A (space, task) *run* evaluates the space's shared design (scikit-learn's defaults and random draws, the
same configurations on every task: the cross-evaluations the portfolio compares tasks by), then a few
TPE trials that start from the design's results, each with :func:`._objective.cross_validated_loss`.
Each finished run is appended as one JSON line to ``<out>/<task type>/<space>.jsonl`` and each task's
meta-features to ``<out>/metafeatures.jsonl``, so a killed build resumes where it stopped and the lines
can be committed as they come. :func:`build_cross` then runs the cross-evaluation round
(:mod:`._cross`), and :func:`._pack.pack` turns the lines into a knowledge file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..spaces import SPACES
from ._cross import choose, cross_path, run_cross, run_record
from ._objective import ESTIMATORS, cross_validated_loss, default_config


@dataclass(frozen=True)
class BuildSettings:
    """What a build evaluates: design size, tuned trials and the row cap of every task."""

    n_design: int = 16
    n_tuned: int = 8
    max_rows: int = 800
    split: str = "meta-train"
    max_tasks: int | None = None  # the first tasks by name only (smoke builds)


def design(space: str, n: int) -> list[dict[str, Any]]:
    """The shared design of ``space``: scikit-learn's defaults, then ``n - 1`` random draws (seeded by name)."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed_of(space)))
    configs = [default_config(SPACES[space])]
    while len(configs) < n:
        configs.append(SPACES[space].suggest(study.ask()))
    return configs[:n]


@lru_cache(maxsize=1)
def _tasks(split: str, max_rows: int) -> dict[str, Any]:
    from ..corpus import load_corpus

    return {t.name: t for t in load_corpus(split, max_rows=max_rows)}


def build_tasks(settings: BuildSettings) -> list[Any]:
    """The corpus tasks a build runs on, by name (only the first ``max_tasks`` for a smoke build)."""
    return sorted(_tasks(settings.split, settings.max_rows).values(), key=lambda t: t.name)[: settings.max_tasks]


def after_tuning(out: Path, settings: BuildSettings, round_name: str) -> None:
    """Check the build's settings, and that its tuning round is finished before ``round_name`` starts."""
    _check_settings(out, settings)
    if next(pending(out, settings), None) is not None:
        raise ValueError(f"The tuning round in {out} is not finished: run build() to the end before {round_name}.")


def _worker_init() -> None:
    """One thread per worker: the build runs ``--jobs`` processes side by side."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # scikit-learn's dependency

    os.environ["OMP_NUM_THREADS"] = "1"
    threadpool_limits(1)


def run_pair(space: str, task_name: str, settings: BuildSettings) -> dict[str, Any]:
    """Tune ``space`` on one corpus task: the shared design, then TPE trials; one JSON-ready record."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the design's study too
    task = _tasks(settings.split, settings.max_rows)[task_name]
    start = time.perf_counter()
    configs, losses = [], []
    for config in design(space, settings.n_design):
        configs.append(config)
        losses.append(cross_validated_loss(space, task.task_type, config, task.X, task.y))
    more = tuned(space, task, configs, losses, settings.n_tuned, seed_of(f"{space}/{task_name}"))
    return run_record(task, configs + more[0], losses + more[1], start)


def seed_of(text: str) -> int:
    """A seed named by ``text`` (the same on every machine)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def tuned(
    space: str, task: Any, configs: list[dict[str, Any]], losses: list[float], n: int, seed: int
) -> tuple[list[dict[str, Any]], list[float]]:
    """``n`` TPE trials of ``space`` on ``task`` that start from the results so far (``configs``, ``losses``;
    NaN for a failed fit); the new configurations and their losses."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=0))
    dists = SPACES[space].distributions()
    for config, loss in zip(configs, losses):
        if math.isfinite(loss):
            study.add_trial(
                optuna.trial.create_trial(params=config, distributions={n: dists[n] for n in config}, value=loss)
            )
    new_configs, new_losses = [], []
    for _ in range(n):
        trial = study.ask()
        config = SPACES[space].suggest(trial)
        loss = cross_validated_loss(space, task.task_type, config, task.X, task.y)
        if math.isfinite(loss):
            study.tell(trial, loss)
        else:  # a failed fit: TPE learns to avoid the region, the run records NaN
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        new_configs.append(config)
        new_losses.append(loss)
    return new_configs, new_losses


def _cross_pair(space: str, task_name: str, configs: list[dict[str, Any]], settings: BuildSettings) -> dict[str, Any]:
    """:func:`._cross.run_cross` in a worker: the task loaded there."""
    return run_cross(space, _tasks(settings.split, settings.max_rows)[task_name], configs)


def _describe(task: Any) -> dict[str, Any]:
    from ..metafeatures import describe

    return {"task": task.name, "metafeatures": describe(task.X, task.y, task.task_type)}


def records_of(path: Path) -> list[dict[str, Any]]:
    """The records of a runs file (a line cut short by a crash is left out)."""
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def _done(path: Path) -> set[str]:
    """The tasks a runs file already holds (a line cut short by a crash is ignored and rewritten later)."""
    return {r["task"] for r in records_of(path) if "task" in r}


def _append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else ""
    if text and not text.endswith("\n"):  # a line cut short by a crash: drop it
        path.write_text(text[: text.rfind("\n") + 1])
    with path.open("a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def runs_path(out: Path, task_type: str, space: str) -> Path:
    return out / task_type / f"{space}.jsonl"


def pending(out: Path, settings: BuildSettings) -> Iterator[tuple[str, str, str]]:
    """The (task type, space, task) runs still to do, task by task, so that a partial build covers whole tasks."""
    tasks = build_tasks(settings)
    done = {(tt, s): _done(runs_path(out, tt, s)) for tt in ESTIMATORS for s in ESTIMATORS[tt]}
    for task in tasks:
        for space in ESTIMATORS[task.task_type]:
            if task.name not in done[task.task_type, space]:
                yield task.task_type, space, task.name


def build(out: Path, settings: BuildSettings, jobs: int = 1, progress: bool = True) -> int:
    """Run every pending (space, task) run with ``jobs`` processes; return how many ran now."""
    _check_settings(out, settings)
    _describe_missing(out, settings)
    todo = [
        (runs_path(out, tt, space), run_pair, (space, task, settings)) for tt, space, task in pending(out, settings)
    ]
    return _run_all(todo, jobs, progress, "knowledge runs")


def build_cross(out: Path, settings: BuildSettings, n: int, jobs: int = 1, progress: bool = True) -> int:
    """The cross-evaluation round (:mod:`._cross`) after a finished tuning round; how many runs ran now."""
    after_tuning(out, settings, "the cross round")
    configs = choose(out, {tt: {s: runs_path(out, tt, s) for s in spaces} for tt, spaces in ESTIMATORS.items()}, n)
    tasks = build_tasks(settings)
    todo = []
    for task in tasks:
        for space in ESTIMATORS[task.task_type]:
            path = cross_path(out, task.task_type, space)
            if configs[task.task_type][space] and task.name not in _done(path):
                todo.append((path, _cross_pair, (space, task.name, configs[task.task_type][space], settings)))
    return _run_all(todo, jobs, progress, "cross-evaluation runs")


def _run_all(todo: list[tuple[Path, Any, tuple]], jobs: int, progress: bool, desc: str) -> int:
    """Run ``fn(*args)`` of every ``(path, fn, args)`` in ``jobs`` processes, appending each record to its path."""
    from tqdm.auto import tqdm

    if not todo:  # nothing to run: no worker processes to start
        return 0
    bar = tqdm(total=len(todo), desc=desc, unit="run", disable=not progress)
    with ProcessPoolExecutor(jobs, initializer=_worker_init) as pool:
        queue = iter(todo)
        running: dict[Future, Path] = {}
        while True:
            while len(running) < 2 * jobs and (item := next(queue, None)) is not None:
                running[pool.submit(item[1], *item[2])] = item[0]
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                _append(running.pop(future), future.result())
                bar.update(1)
    bar.close()
    return len(todo)


def _check_settings(out: Path, settings: BuildSettings) -> None:
    """Record the settings of a new build; refuse to resume one made with other settings (mixed runs)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "settings.json"
    mine = asdict(settings)
    if path.exists() and (theirs := json.loads(path.read_text())) != mine:
        raise ValueError(
            f"The runs in {out} were made with other settings ({theirs}); this build asks for {mine}. "
            "Resume with the same settings, or build into another folder (--out)."
        )
    path.write_text(json.dumps(mine, indent=1) + "\n")


def _describe_missing(out: Path, settings: BuildSettings) -> None:
    path = out / "metafeatures.jsonl"
    done = _done(path)
    tasks = build_tasks(settings)
    for task in tasks:
        if task.name not in done:
            _append(path, _describe(task))
