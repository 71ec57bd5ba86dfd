"""The cases of ``tabular_real.py``: one (task, n_train, seed) subsample, five classifiers fitted and scored.

A case draws its training rows by :func:`split_rows`, fits every method of :data:`METHODS` on them, and scores
the predicted probabilities of the test rows. Worker processes run single-threaded and warm up first, so the
timings compare the methods' fit and predict, not imports or the first load of the artifact.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import multiprocessing as mp
import os
import time
import warnings
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("MetaLearnedClassifier", "LogisticRegression", "RandomForest", "HistGradientBoosting", "MLPClassifier")
MIN_TEST, MAX_TEST = 100, 5000
CLIP = 1e-15  # a probability of 0 for the true class costs -log(1e-15) = 34.5 nats, for every method alike


@lru_cache(maxsize=1)
def tasks() -> dict[str, Any]:
    """The corpus's classification evaluation tasks, by name (never a meta-train task)."""
    from automl_meta.corpus import load_corpus

    return {t.name: t for t in load_corpus("evaluation", task_type="classification")}


def estimator_digest() -> str:
    """sha256 (16 hex digits) of the scikit-learn integration's source: a changed estimator reruns its cases."""
    from automl_meta.integrations import sklearn as module

    folder = Path(module.__file__).parent
    h = hashlib.sha256()
    for path in sorted([folder / "sklearn.py", *folder.glob("_sklearn_*.py")]):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """What a case's numbers depend on besides the task: cases recorded with other versions run again."""
    import sklearn
    import torch

    import automl_meta as am

    return {
        "sklearn": sklearn.__version__,
        "torch": torch.__version__,
        "automl_meta": am.__version__,
        "artifact": am.load("default-tabular-classification").manifest["tensors_sha256"],
        "estimator": estimator_digest(),
    }


def split_rows(y: np.ndarray, n_train: int, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Stratified training rows with at least one row of every class (when ``n_train`` allows), and test rows.

    Each class gets its proportional share of ``n_train`` rounded down, at least one row, then the rows still
    missing (or in excess) go to (or from) the classes furthest below (or above) their shares; each class's
    rows in a seeded random order. The test rows are a random sample of the others, at most :data:`MAX_TEST`.
    """
    rng = np.random.default_rng([seed, n_train, zlib.crc32(name.encode())])
    counts = np.bincount(y)
    order = [rng.permutation(np.flatnonzero(y == k)) for k in range(len(counts))]
    share = counts * n_train / counts.sum()
    take = np.floor(share).astype(int)
    if n_train >= np.count_nonzero(counts):
        take[counts > 0] = np.maximum(take[counts > 0], 1)
    while take.sum() > n_train:
        take[np.argmax(np.where(take > 1, take - share, -np.inf))] -= 1
    while take.sum() < n_train:
        take[np.argmax(np.where(take < counts, share - take, -np.inf))] += 1
    train = np.sort(np.concatenate([o[:t] for o, t in zip(order, take)]))
    rest = np.setdiff1d(np.arange(len(y)), train)
    test = np.sort(rng.choice(rest, size=min(MAX_TEST, len(rest)), replace=False))
    return train, test


def estimators(seed: int) -> dict[str, Any]:
    """The five methods at their defaults; the baselines behind the corpus's preprocessor."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline

    from automl_meta.corpus import make_preprocessor
    from automl_meta.integrations.sklearn import MetaLearnedClassifier

    return {
        "MetaLearnedClassifier": MetaLearnedClassifier(random_state=seed),  # encodes NaN and categories itself
        "LogisticRegression": make_pipeline(make_preprocessor(), LogisticRegression()),
        "RandomForest": make_pipeline(
            make_preprocessor(), RandomForestClassifier(n_estimators=200, n_jobs=1, random_state=seed)
        ),
        "HistGradientBoosting": make_pipeline(make_preprocessor(), HistGradientBoostingClassifier(random_state=seed)),
        "MLPClassifier": make_pipeline(make_preprocessor(), MLPClassifier(random_state=seed)),
    }


def score(proba: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Log-loss (nats, the true class's probability clipped at :data:`CLIP`) and accuracy."""
    p = np.clip(proba[np.arange(len(y)), y], CLIP, 1.0)
    return float(-np.log(p).mean()), float((proba.argmax(1) == y).mean())


def fit_predict(estimator: Any, X: Any, y: np.ndarray, X_test: Any, n_classes: int) -> tuple[np.ndarray, float, int]:
    """Probabilities over all ``n_classes`` (0 for a class the model never saw), seconds and convergence warnings."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # recorded, not printed: LogisticRegression and MLP warn in storms
        started = time.perf_counter()
        estimator.fit(X, y)
        part = estimator.predict_proba(X_test)
        seconds = time.perf_counter() - started
    proba = np.zeros((len(part), n_classes))
    proba[:, np.asarray(estimator.classes_, dtype=int)] = part
    return proba, seconds, sum(issubclass(w.category, ConvergenceWarning) for w in caught)


def run_case(unit: tuple[str, int, int]) -> dict[str, Any]:
    """Fit and score every method on one subsample of one task."""
    name, n_train, seed = unit
    task = tasks()[name]
    train, test = split_rows(task.y, n_train, seed, name)
    y_train, y_test = task.y[train], task.y[test]
    case: dict[str, Any] = {
        "task": name,
        "n_train": n_train,
        "seed": seed,
        "n_test": len(test),
        "n_classes": task.n_classes,
        "absent_classes": int(task.n_classes - len(np.unique(y_train))),
        "fingerprint": task.fingerprint,
        "version": versions(),
    }
    for method, estimator in estimators(seed).items():
        proba, seconds, warned = fit_predict(estimator, task.X.iloc[train], y_train, task.X.iloc[test], task.n_classes)
        log_loss, accuracy = score(proba, y_test)
        case[method] = {"log_loss": log_loss, "accuracy": accuracy, "seconds": seconds, "convergence_warnings": warned}
    return case


def _warm_up() -> None:
    """Fit every method once on a small mixed table: imports, the artifact's load and torch's start-up."""
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": pd.Categorical(rng.choice(list("xyz"), 60))})
    X.loc[::9, "a"] = np.nan
    y = (X["b"] == "x").to_numpy().astype(int)
    for estimator in estimators(0).values():
        fit_predict(estimator, X, y, X, 2)


def init_worker() -> None:
    """One thread per worker (``--jobs`` processes share the cores), then a warm-up."""
    import torch
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # scikit-learn's dependency

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    threadpool_limits(1)
    torch.set_num_threads(1)
    tasks()
    versions()
    _warm_up()


def run_pending(units: list[tuple[str, int, int]], log: Path, jobs: int) -> None:
    """Run the units with ``jobs`` processes, appending each finished case to the gzipped ``log`` as it ends."""
    from tqdm.auto import tqdm

    pool = mp.get_context("spawn").Pool(jobs, initializer=init_worker) if jobs > 1 else None
    if pool is None and units:
        init_worker()
    finished = pool.imap_unordered(run_case, units) if pool is not None else map(run_case, units)
    try:
        with gzip.open(log, "at") as f, tqdm(total=len(units), desc="cases", unit="case") as bar:
            for case in finished:  # kept as soon as it ends: a killed run resumes from the others
                f.write(json.dumps(case) + "\n")
                f.flush()
                bar.update()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def read_log(log: Path) -> tuple[list[dict[str, Any]], bool]:
    """The cases in ``log``, and whether it was whole (a run killed while writing leaves a truncated tail)."""
    lines: list[str] = []
    whole = True
    if log.exists():
        try:
            with gzip.open(log, "rt") as f:
                lines.extend(f)
        except (EOFError, OSError, zlib.error):
            whole = False
    whole = whole and all(line.endswith("\n") for line in lines)
    return [json.loads(line) for line in lines if line.endswith("\n")], whole


def load_cases(log: Path, current: dict[str, str], fingerprints: dict[str, str]) -> list[dict[str, Any]]:
    """The logged cases of the current versions and task contents; the others are dropped, to run again."""
    done, whole = read_log(log)
    kept = [c for c in done if c["version"] == current and fingerprints.get(c["task"]) == c["fingerprint"]]
    if len(kept) < len(done):
        print(f"{len(done) - len(kept)} logged cases ran with other versions or data: they run again", flush=True)
    if len(kept) < len(done) or not whole:  # rewritten whole: gzip cannot append after a truncated member
        tmp = log.with_name(log.name + ".tmp")
        with gzip.open(tmp, "wt") as f:
            f.writelines(json.dumps(c) + "\n" for c in kept)
        tmp.replace(log)
    return kept
