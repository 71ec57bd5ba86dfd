"""The cases of ``warmstart_real.py``: running one (evaluation task, search space) unit per worker call, and
keeping the finished cases (a log that resumes, a snapshot kept with the results).

A unit runs every pending (sampler, seed) pair of its task and space, so the worker's cache of losses
(the objective is deterministic) serves them all: TPE's first trials are its RandomSampler's draws, and
the portfolio of MetaLearnedSampler is the same for every seed. Parameter names carry the Pipeline step
prefix that ``make_pipeline`` gives the estimator (``randomforestclassifier__``), as a user's study of a
Pipeline does; the prefix also lets MetaLearnedSampler tell random forests from extra trees.
"""

from __future__ import annotations

import gzip
import json
import math
import multiprocessing as mp
import os
import signal
import tempfile
import time
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

SAMPLERS = ("MetaLearnedSampler", "TPESampler", "RandomSampler", "WS-CMA-ES")
TRIALS = {"MetaLearnedSampler": 50, "TPESampler": 50, "RandomSampler": 20, "WS-CMA-ES": 10}
QUICK_TRIALS = {"MetaLearnedSampler": 10, "TPESampler": 20, "RandomSampler": 10, "WS-CMA-ES": 10}
N_SOURCE_TASKS = 5
MAX_ROWS = 1000

_LOSSES: dict[tuple[str, str, tuple], float] = {}  # (task, space, configuration) -> loss, per worker


@lru_cache(maxsize=1)
def evaluation_tasks() -> dict[str, Any]:
    """The held-out real tasks of the corpus by name (never in the knowledge file)."""
    from automl_meta.corpus import load_corpus

    return {t.name: t for t in load_corpus("evaluation", max_rows=MAX_ROWS)}


def knowledge_sha() -> str:
    """The checksum of the bundled knowledge file as it is now (the build repacks it as it grows)."""
    from automl_meta.knowledge import bundled_path

    return str(json.loads(bundled_path().read_text())["sha256"])


@lru_cache(maxsize=2)
def _knowledge_at(sha: str) -> Any:
    from automl_meta import knowledge as kb

    return kb.load()


def knowledge() -> Any:
    """The bundled knowledge file, read again when it has changed (as MetaLearnedSampler does)."""
    return _knowledge_at(knowledge_sha())


@lru_cache(maxsize=8)
def description(task_name: str) -> tuple[dict[str, float], float]:
    """The task's meta-features (described as the task type it is) and the seconds describing took."""
    from automl_meta.metafeatures import describe

    task = evaluation_tasks()[task_name]
    start = time.perf_counter()
    return describe(task.X, task.y, task.task_type), time.perf_counter() - start


def metafeatures(task_name: str) -> np.ndarray:
    from automl_meta.metafeatures import as_vector

    return as_vector(description(task_name)[0])


def step_prefix(space: str, task_type: str) -> str:
    """The name ``make_pipeline`` gives the space's estimator, with the ``__`` of its parameters."""
    from automl_meta.knowledge._objective import ESTIMATORS

    return ESTIMATORS[task_type][space].rpartition(".")[2].lower() + "__"


def case_version(name: str, space: str) -> str:
    """What a case's losses depend on: :func:`sampler_version` and :func:`objective_version`."""
    return sampler_version(name) + objective_version(space)


def objective_version(space: str) -> str:
    """What the objective's losses in ``space`` depend on besides scikit-learn: for the SVMs, the iteration cap."""
    from automl_meta.knowledge._objective import SVM_MAX_ITER

    return f"; svm max_iter {SVM_MAX_ITER}" if space in ("svc", "svr") else ""


def sampler_version(name: str) -> str:
    """What a case's losses depend on besides task and seed: sampler, knowledge file (if read), scikit-learn."""
    import optuna
    import sklearn

    base = f"optuna {optuna.__version__}; scikit-learn {sklearn.__version__}; fits seeded per configuration"
    if name == "RandomSampler" or name == "TPESampler":
        return base
    sha = knowledge_sha()[:16]  # the file grows while the build runs: its cases rerun
    if name == "WS-CMA-ES":
        return f"{base}; knowledge {sha}"
    from automl_meta.integrations.optuna._sampler import _SAMPLER_VERSION

    return f"{base}; sampler {_SAMPLER_VERSION}; knowledge {sha}"


def source_trials(task_name: str, space: str, prefix: str, k: int = N_SOURCE_TASKS) -> list:
    """WS-CMA-ES's source: the knowledge runs of the k nearest knowledge tasks of the task's type in ``space``.

    Distance between meta-features standardised by their spread over the knowledge tasks. Only the
    non-conditional numerical parameters are kept: CMA-ES models those, and takes source trials of exactly
    its search space.
    """
    import optuna

    kb = knowledge()
    block = kb.block(space, evaluation_tasks()[task_name].task_type)
    if block is None:
        return []
    from automl_meta.spaces import SPACES

    numeric = {
        n: d
        for n, d in block.distributions.items()
        if n in SPACES[space].params and not isinstance(d, optuna.distributions.CategoricalDistribution)
    }
    runs = block.runs()
    ids = sorted(runs)
    scale = kb.metafeatures.std(0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    gap = np.nan_to_num(kb.metafeatures[ids] / scale - metafeatures(task_name) / scale)
    trials = []
    for j in np.argsort(np.linalg.norm(gap, axis=1), kind="stable")[:k]:
        for i, loss in zip(*runs[ids[j]]):
            config = block.config(i)
            trials.append(
                optuna.trial.create_trial(
                    params={prefix + n: config[n] for n in numeric},
                    distributions={prefix + n: d for n, d in numeric.items()},
                    value=float(loss),
                )
            )
    return trials


def _cma_es(seed: int, source: list, modelled: set[str]) -> Any:
    """WS-CMA-ES over the parameters its source trials hold; the others go to its independent sampler."""
    import optuna

    class WarmStartCmaEs(optuna.samplers.CmaEsSampler):
        # A conditional parameter that the first trials happen to share would join Optuna's intersection
        # search space, which the source trials (non-conditional parameters) would then not match.
        def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
            space = super().infer_relative_search_space(study, trial)
            return {n: d for n, d in space.items() if n in modelled}

    return WarmStartCmaEs(
        seed=seed,
        source_trials=source or None,  # no knowledge of the space (yet): plain CMA-ES
        warn_independent_sampling=False,
        independent_sampler=optuna.samplers.RandomSampler(seed=seed),
    )


def make_sampler(name: str, seed: int, task_name: str, space: str, prefix: str, store_url: str) -> tuple[Any, int]:
    """The sampler of a case and the number of source trials it was given (WS-CMA-ES only)."""
    import optuna

    if name == "MetaLearnedSampler":
        from automl_meta.integrations.optuna import MetaLearnedSampler

        # Meta-features rather than (X, y): TaskDescription.from_data cannot fingerprint a table with text
        # columns, and it infers the task type from y (integer targets of regression tasks look like classes).
        return MetaLearnedSampler(task=description(task_name)[0], store=store_url, seed=seed), 0
    if name == "TPESampler":
        return optuna.samplers.TPESampler(seed=seed), 0
    if name == "RandomSampler":
        return optuna.samplers.RandomSampler(seed=seed), 0
    source = source_trials(task_name, space, prefix)
    return _cma_es(seed, source, set(source[0].params) if source else set()), len(source)


def _loss(task_name: str, space: str, config: dict[str, Any]) -> tuple[float, bool]:
    """The cross-validated loss (NaN for a failed fit) and whether it came from the cache."""
    from automl_meta.knowledge._objective import cross_validated_loss

    key = (task_name, space, tuple(sorted(config.items())))
    if key in _LOSSES:
        return _LOSSES[key], True
    task = evaluation_tasks()[task_name]
    # The unseeded estimators (forests, boosting, the MLP) draw from NumPy's global state: seeded per
    # configuration, a configuration scores the same in every case and every run, so runs repeat exactly.
    np.random.seed(config_seed(config))
    _LOSSES[key] = cross_validated_loss(space, task.task_type, config, task.X, task.y)
    return _LOSSES[key], False


def config_seed(config: dict[str, Any], offset: int = 0) -> int:
    """A seed of NumPy's global state for fitting ``config`` (``offset`` gives another one)."""
    return (zlib.crc32(repr(sorted(config.items())).encode()) + offset) % 2**32


def run_case(task_name: str, space: str, name: str, seed: int, trials: int) -> dict[str, Any]:
    """One study; failed fits are told to Optuna as failed trials (their loss is recorded as None)."""
    import optuna

    from automl_meta.spaces import SPACES

    prefix = step_prefix(space, evaluation_tasks()[task_name].task_type)
    version = case_version(name, space)
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:  # an empty store, the user's untouched
        wall, cpu = time.perf_counter(), time.process_time()
        sampler, n_source = make_sampler(name, seed, task_name, space, prefix, f"sqlite:///{tmp}/experience.db")
        study = optuna.create_study(sampler=sampler)
        values: list[float | None] = []
        configs: list[dict[str, Any]] = []
        sampling, evaluating, first, hits = 0.0, 0.0, math.nan, 0
        for i in range(trials):
            t0 = time.perf_counter()
            trial = study.ask()
            config = {n[len(prefix) :]: v for n, v in SPACES[space].suggest(trial, prefix).items()}
            t1 = time.perf_counter()
            loss, cached = _loss(task_name, space, config)
            t2 = time.perf_counter()
            ok = math.isfinite(loss)
            study.tell(trial, loss if ok else None, state=None if ok else optuna.trial.TrialState.FAIL)
            t3 = time.perf_counter()
            sampling += (t1 - t0) + (t3 - t2)
            evaluating += t2 - t1
            first = (t1 - t0) + (t3 - t2) if i == 0 else first
            hits += cached
            values.append(loss if ok else None)
            configs.append(config)
        if name == "MetaLearnedSampler":  # given (X, y), the sampler describes the task on its first trial
            first += description(task_name)[1]
    return {
        "task": task_name,
        "task_type": evaluation_tasks()[task_name].task_type,
        "space": space,
        "sampler": name,
        "seed": seed,
        "values": values,
        "configs": configs,
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "sampler_seconds": sampling,
        "objective_seconds": evaluating,
        "first_trial_seconds": first,
        "cache_hits": hits,
        "source_trials": n_source,
        # A knowledge file repacked during the case: which one the sampler read is unknown, so the case reruns.
        "version": version if case_version(name, space) == version else "knowledge file changed during the case",
    }


def run_unit(unit: tuple[str, str, list[tuple[str, int]], dict[str, int]]) -> list[dict[str, Any]]:
    """Every pending (sampler, seed) case of one task and space."""
    import logging
    import warnings

    import optuna

    task_name, space, pending, trials = unit
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("automl_meta").setLevel(logging.ERROR)
    if _LOSSES and next(iter(_LOSSES))[:2] != (task_name, space):
        _LOSSES.clear()  # units come one (task, space) at a time: older losses are not asked again
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature and convergence warnings
        return [run_case(task_name, space, name, seed, trials[name]) for name, seed in pending]


def init_worker() -> None:
    """One thread per worker: ``--jobs`` processes share the cores with each other (and other builds)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # scikit-learn's dependency

    os.environ["OMP_NUM_THREADS"] = "1"
    threadpool_limits(1)


def load_cases(log: Path, snapshot: Path, fresh: bool, version: Any = None) -> list[dict[str, Any]]:
    """The finished cases of the current versions (others are dropped, to run again); ``version`` gives a
    record's current version (default: :func:`case_version` of its sampler and space)."""
    version = version or (lambda c: case_version(c["sampler"], c["space"]))
    if fresh:
        log.unlink(missing_ok=True)
        snapshot.unlink(missing_ok=True)
    if not log.exists() and snapshot.exists():  # a new checkout: start from the cases kept with the results
        with gzip.open(snapshot, "rt") as f:
            log.write_text(f.read())
    done = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    kept = [c for c in done if c.get("version") == version(c)]
    if len(kept) < len(done):
        stale = sorted({c.get("sampler", "re-scoring") for c in done if c not in kept})
        print(f"{len(done) - len(kept)} cases ran another version of {', '.join(stale)}: they run again", flush=True)
        log.write_text("".join(json.dumps(c) + "\n" for c in kept))
    return kept


def write_snapshot(path: Path, done: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt") as f:
        f.writelines(json.dumps(c) + "\n" for c in done)
    tmp.replace(path)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_pending(
    units: list, done: list[dict[str, Any]], log: Path, snapshot: Path, jobs: int, work: Any = None, desc: str = "cases"
) -> None:
    """Run the units with ``jobs`` processes, appending each finished case to the log (and the snapshot);
    ``work`` runs a unit (default :func:`run_unit`) and returns its records."""
    work = work or run_unit
    from tqdm.auto import tqdm

    signal.signal(signal.SIGTERM, _interrupt)  # a stopped run (kill, a session's end) keeps its cases too
    bar = tqdm(total=sum(len(u[2]) for u in units), desc=desc, unit="case")
    last = time.monotonic()
    with open(log, "a") as f:
        if jobs > 1:
            pool = mp.get_context("spawn").Pool(jobs, initializer=init_worker)
            results = pool.imap_unordered(work, units)
        else:
            init_worker()
            pool, results = None, map(work, units)
        try:
            for finished in results:
                f.writelines(json.dumps(c) + "\n" for c in finished)
                f.flush()
                done.extend(finished)
                bar.update(len(finished))
                if time.monotonic() - last > 300:
                    write_snapshot(snapshot, done)
                    last = time.monotonic()
        finally:  # stopped (Ctrl-C, SIGTERM) or not, the kept cases include every finished one
            bar.close()
            write_snapshot(snapshot, done)
            if pool is not None:
                pool.terminate()
                pool.join()
