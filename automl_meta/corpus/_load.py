"""Building the corpus from its sources, and loading it (from the cache when it is current)."""

from __future__ import annotations

import hashlib
import warnings
from functools import lru_cache
from typing import Any

from .._validation import check_optional_int
from ._dedupe import identity, keep_one
from ._rules import MAX_ROWS, RULES_VERSION, Rejected, build_task, cap_rows
from ._sources import SOURCES, raw_tables, source_versions
from ._split import split_of
from ._task import SPLITS, CorpusTask, fingerprint


def _build() -> tuple[list[CorpusTask], dict[str, str]]:
    """Every task that passes the rules and survives near-duplicate removal, and why the others did not."""
    built, identities, rejected = {}, [], {}
    for table in raw_tables():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # constant columns in rank correlations, mixed-type CSVs
                X, y, task_type, classes, target = build_task(table.frame, table.name, table.target, table.drop)
        except Rejected as exc:
            rejected[table.name] = str(exc)
            continue
        built[table.name] = CorpusTask(
            table.name,
            table.source,
            table.dataset,
            target,
            task_type,
            X,
            y,
            classes,
            fingerprint(X, y),
            split_of(table.name),
        )
        identities.append(
            identity(
                table.name, table.source, table.frame, target, len(table.frame), documented=table.target is not None
            )
        )
    kept, removed = keep_one(identities)
    rejected.update({name: f"near-duplicate of {other}" for name, other in removed.items()})
    tasks = sorted((built[name] for name in kept), key=lambda t: t.name)
    return tasks, dict(sorted(rejected.items()))


@lru_cache(maxsize=1)
def _corpus() -> tuple[tuple[CorpusTask, ...], tuple[tuple[str, str], ...]]:
    from ._cache import read_cache, write_cache

    key = cache_key()
    cached = read_cache(key)
    if cached is not None:
        return cached
    tasks, rejected = _build()
    write_cache(key, tasks, rejected)
    return tuple(tasks), tuple(rejected.items())


@lru_cache(maxsize=1)
def _code_digest() -> str:
    """A digest of the modules that decide the corpus, so an edited rule never reads a stale cache."""
    from pathlib import Path

    here = Path(__file__).parent
    h = hashlib.sha256()
    for module in ("_rules.py", "_overrides.py", "_sources.py", "_dedupe.py", "_split.py", "_task.py"):
        h.update((here / module).read_bytes())
    return h.hexdigest()[:12]


def cache_key() -> dict[str, Any]:
    """What the corpus depends on: the rules version and code, the row cap and each source's version."""
    return {
        "rules_version": RULES_VERSION,
        "rules_code": _code_digest(),
        "max_rows": MAX_ROWS,
        "sources": source_versions(),
    }


def load_corpus(
    split: str | None = None, *, max_rows: int | None = None, task_type: str | None = None
) -> list[CorpusTask]:
    """The real-data corpus: every task, or those of one split, in a fixed order (by name).

    The first call builds the corpus from the installed packages (or reads the local cache, see
    :func:`automl_meta.corpus.cache_dir`); later calls in the process reuse it.

    Parameters
    ----------
    split : {"meta-train", "evaluation"}, optional
        Only the tasks of this split. Meta-training and knowledge builds must use ``"meta-train"``.
    max_rows : int, optional
        Subsample each task to at most this many rows (seeded by the task name, stratified by class,
        rows in their original order). Default: the corpus cap, ``MAX_ROWS`` (10,000).
    task_type : {"classification", "regression"}, optional
        Only the tasks of this type.

    Returns
    -------
    list of CorpusTask

    Raises
    ------
    ImportError
        When a corpus package is missing; install them with ``pip install 'automl-meta[corpus]'``.

    Examples
    --------
    >>> from automl_meta.corpus import load_corpus
    >>> tasks = load_corpus("evaluation", max_rows=500)
    >>> len(tasks) >= 30, {t.split for t in tasks}, max(t.n_rows for t in tasks)
    (True, {'evaluation'}, 500)
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}.")
    if task_type not in (None, "classification", "regression"):
        raise ValueError(f"task_type must be 'classification', 'regression' or None, got {task_type!r}.")
    max_rows = check_optional_int(max_rows, "max_rows", 10, none_means="the corpus cap")
    tasks = [t for t in _corpus()[0] if split in (None, t.split) and task_type in (None, t.task_type)]
    if max_rows is None:
        return list(tasks)
    return [_subsample(t, max_rows) for t in tasks]


def _subsample(task: CorpusTask, max_rows: int) -> CorpusTask:
    if task.n_rows <= max_rows:
        return task
    keep = cap_rows(task.y, max_rows, task.name, stratify=task.classes is not None)
    X, y = task.X.iloc[keep].reset_index(drop=True), task.y[keep]
    return CorpusTask(
        task.name,
        task.source,
        task.dataset,
        task.target,
        task.task_type,
        X,
        y,
        task.classes,
        fingerprint(X, y),
        task.split,
    )


def corpus_manifest() -> dict[str, Any]:
    """Provenance of the corpus: rules version, source versions, each task's shape, and every rejection.

    Examples
    --------
    >>> from automl_meta.corpus import corpus_manifest
    >>> manifest = corpus_manifest()
    >>> manifest["rules_version"], manifest["n_tasks"] == len(manifest["tasks"])
    ('1', True)
    >>> manifest["tasks"][0]["name"]
    'palmerpenguins/penguins'
    """
    tasks, rejected = _corpus()
    return {
        **cache_key(),
        "n_tasks": len(tasks),
        "tasks": [
            {
                "name": t.name,
                "source": t.source,
                "dataset": t.dataset,
                "target": t.target,
                "task_type": t.task_type,
                "n_rows": t.n_rows,
                "n_features": t.n_features,
                "n_categorical": len(t.categorical_features),
                "has_missing": t.has_missing,
                "n_classes": t.n_classes,
                "split": t.split,
                "fingerprint": t.fingerprint,
            }
            for t in tasks
        ],
        "rejected": dict(rejected),
    }


__all__ = ["load_corpus", "corpus_manifest", "SOURCES"]
