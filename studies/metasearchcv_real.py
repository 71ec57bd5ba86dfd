"""MetaSearchCV against the estimator's defaults on real datasets that the knowledge base never saw.

On classification evaluation tasks of the corpus (``load_corpus("evaluation", max_rows=1000)``; never in the
knowledge file), 10 of them spread over the range of sizes (every k-th in the order of rows), each method is
scored by an outer 5-fold stratified cross-validation (shuffled, seed 0; the same folds for every method):

- ``defaults``: ``make_pipeline(make_preprocessor(), HistGradientBoostingClassifier())``;
- ``MetaSearchCV``: ``MetaSearchCV(<that pipeline>, n_trials=10, cv=3, random_state=0)`` with its default
  sampler (the bundled knowledge, an empty experience store), fitted on the outer training folds only;
- ``TPE``: the same search with ``sampler=TPESampler(seed=0)``: what a plain search of 10 trials gives.

The score is the accuracy on the outer test fold of the estimator each method refits; per task, the mean over
the 5 folds. The headline is the paired difference MetaSearchCV - defaults (and MetaSearchCV - TPE) averaged
over tasks, with a 95% percentile bootstrap interval over tasks (10,000 resamples). This is nested
cross-validation: a search's own best cross-validated score (optimistic after 10 tries) is not used.

Each finished (task, fold) is appended to ``<out>/metasearchcv_real_cases.jsonl`` (a killed run resumes);
a case records the versions it ran with (scikit-learn, Optuna, the knowledge file's checksum,
``MetaLearnedSampler``'s ``_SAMPLER_VERSION``), and cases of other versions run again.

    python studies/metasearchcv_real.py --jobs 2     # full run, resumable: several hours on 2 cores (the first 21
                                                      # cases, on the 5 smallest tasks, took 1.3 worker-hours)
    python studies/metasearchcv_real.py --quick      # 2 small tasks, 2 folds, 3 trials (about a minute)

Writes ``metasearchcv_real.csv`` (per task and method), ``metasearchcv_real.json`` (headline) and
``metasearchcv_real.png`` (per-task differences).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _report import output_dir, parser, print_table, save_figure, write_csv, write_json

METHODS = ("defaults", "MetaSearchCV", "TPE")
N_TASKS, N_FOLDS, N_TRIALS, INNER_CV, MAX_ROWS = 10, 5, 10, 3, 1000
QUICK = {"tasks": 2, "folds": 2, "trials": 3}
BOOTSTRAP = 10_000


@lru_cache(maxsize=1)
def _tasks() -> dict[str, Any]:
    from automl_meta.corpus import load_corpus

    return {t.name: t for t in load_corpus("evaluation", max_rows=MAX_ROWS) if t.task_type == "classification"}


def select_tasks(n: int, quick: bool) -> list[str]:
    """``n`` tasks spread over the size order (the smallest ones for a quick run)."""
    ordered = sorted(_tasks().values(), key=lambda t: (t.n_rows, t.name))
    if quick:
        return [t.name for t in ordered[:n]]
    picks = np.unique(np.round(np.linspace(0, len(ordered) - 1, min(n, len(ordered)))).astype(int))
    return [ordered[i].name for i in picks]


def versions() -> dict[str, str]:
    import optuna
    import sklearn

    from automl_meta import knowledge
    from automl_meta.integrations.optuna._sampler import _SAMPLER_VERSION

    return {
        "sklearn": sklearn.__version__,
        "optuna": optuna.__version__,
        "knowledge": knowledge.load().manifest["sha256"],
        "sampler": _SAMPLER_VERSION,
    }


def _methods(trials: int) -> dict[str, Any]:
    from optuna.samplers import TPESampler
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline

    from automl_meta.corpus import make_preprocessor
    from automl_meta.integrations.sklearn import MetaSearchCV

    pipeline = make_pipeline(make_preprocessor(), HistGradientBoostingClassifier())
    search = {"n_trials": trials, "cv": INNER_CV, "random_state": 0}
    return {
        "defaults": pipeline,
        "MetaSearchCV": MetaSearchCV(pipeline, **search),
        "TPE": MetaSearchCV(pipeline, sampler=TPESampler(seed=0), **search),
    }


def run_case(unit: tuple[str, int, int, int]) -> dict[str, Any]:
    """Fit every method on the outer training folds of one (task, fold); their test accuracies and times."""
    import warnings

    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    name, fold, folds, trials = unit
    task = _tasks()[name]
    train, test = list(StratifiedKFold(folds, shuffle=True, random_state=0).split(task.X, task.y))[fold]
    out: dict[str, Any] = {"task": name, "fold": fold, "folds": folds, "trials": trials, "version": versions()}
    for method, estimator in _methods(trials).items():
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # failed fits and convergence warnings of single trials
            model = clone(estimator).fit(task.X.iloc[train], task.y[train])
        out[method] = float(model.score(task.X.iloc[test], task.y[test]))
        out[f"{method}_seconds"] = time.perf_counter() - started
    return out


def _init_worker(store: str) -> None:
    import optuna
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    os.environ["AUTOML_META_STORE"] = store  # an empty store: the bundled knowledge alone warm-starts
    threadpool_limits(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def run_pending(units: list, log: Path, jobs: int) -> None:
    from contextlib import ExitStack

    from tqdm.auto import tqdm

    store = f"sqlite:///{Path(tempfile.mkdtemp()) / 'experience.db'}"
    with ExitStack() as stack, open(log, "a") as f, tqdm(total=len(units), desc="cases", unit="case") as bar:
        if jobs > 1:
            pool = stack.enter_context(mp.get_context("spawn").Pool(jobs, _init_worker, (store,)))
            finished = pool.imap_unordered(run_case, units)
        else:
            _init_worker(store)
            finished = map(run_case, units)
        for case in finished:  # each case is kept as soon as it ends: a killed run resumes from them
            f.write(json.dumps(case) + "\n")
            f.flush()
            bar.update()


def bootstrap(d: np.ndarray) -> list[float]:
    """95% percentile bootstrap interval of the mean of ``d`` (resampling tasks)."""
    boot = d[np.random.default_rng(0).integers(0, len(d), (BOOTSTRAP, len(d)))].mean(1)
    return [float(x) for x in np.percentile(boot, [2.5, 97.5])]


def report(out: Path, cases: list[dict[str, Any]], names: list[str], folds: int, trials: int) -> dict[str, Any]:
    """Per-task means, the paired differences over tasks, the CSV and the figure."""
    per = {n: [c for c in cases if c["task"] == n] for n in names}
    done = [n for n in names if len(per[n]) == folds]
    rows = [[n, *(float(np.mean([c[m] for c in per[n]])) for m in METHODS)] for n in done]
    print_table(["task", *METHODS], rows)
    write_csv(out / "metasearchcv_real.csv", ["task", *METHODS], rows)
    if not rows:
        return {"tasks": 0, "tasks_expected": len(names)}
    scores = np.array([r[1:] for r in rows], dtype=float)
    summary: dict[str, Any] = {"tasks": len(done), "tasks_expected": len(names), "folds": folds}
    summary["mean_accuracy"] = dict(zip(METHODS, scores.mean(0).tolist()))
    for other in ("defaults", "TPE"):
        d = scores[:, 1] - scores[:, METHODS.index(other)]
        summary[f"MetaSearchCV_minus_{other}"] = {
            "mean": float(d.mean()),
            "ci95": bootstrap(d),
            "wins": int((d > 0).sum()),
            "ties": int((d == 0).sum()),
            "losses": int((d < 0).sum()),
        }
    seconds = {m: float(np.mean([c[f"{m}_seconds"] for c in cases if c["task"] in done])) for m in METHODS}
    summary["fit_seconds_per_fold"] = seconds
    print()
    print_table(
        ["MetaSearchCV minus", "mean difference", "ci95 low", "ci95 high", "wins", "ties", "losses"],
        [
            [o, s["mean"], *s["ci95"], s["wins"], s["ties"], s["losses"]]
            for o in ("defaults", "TPE")
            for s in [summary[f"MetaSearchCV_minus_{o}"]]
        ],
    )
    beats = summary["MetaSearchCV_minus_defaults"]["mean"] > 0
    verdict = "YES" if beats else "NO"
    print(f"\nMetaSearchCV ({trials} trials) beats the defaults on average over {len(done)} tasks: {verdict}")
    summary["beats_defaults_on_average"] = bool(beats)
    _plot(out / "metasearchcv_real.png", done, scores)
    return summary


def _plot(path: Path, names: list[str], scores: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(scores[:, 1] - scores[:, 0])
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.5))
    y = np.arange(len(names))
    for j, (label, marker) in enumerate([("MetaSearchCV", "o"), ("TPE", "x")], start=1):
        ax.scatter(scores[order, j] - scores[order, 0], y, marker=marker, label=f"{label} - defaults")
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(y, [names[i].split("/", 1)[-1] for i in order], fontsize=8)
    ax.set_xlabel("outer-fold accuracy minus the defaults' (mean over folds)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__, "2 small tasks, 2 outer folds, 3 trials per search")
    p.add_argument("--tasks", type=int, help=f"number of tasks (default {N_TASKS})")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    args = p.parse_args(argv)
    out = output_dir(args.out, args.quick)
    n = args.tasks or (QUICK["tasks"] if args.quick else N_TASKS)
    folds, trials = (QUICK["folds"], QUICK["trials"]) if args.quick else (N_FOLDS, N_TRIALS)
    names = select_tasks(n, args.quick)
    log = out / "metasearchcv_real_cases.jsonl"
    current = versions()
    cases = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    cases = [c for c in cases if c["version"] == current and c["folds"] == folds and c["trials"] == trials]
    have = {(c["task"], c["fold"]) for c in cases}
    units = [(t, k, folds, trials) for t in names for k in range(folds) if (t, k) not in have]
    print(f"{len(names)} tasks x {folds} folds: {len(units)} cases to run", flush=True)
    log.write_text("".join(json.dumps(c) + "\n" for c in cases))  # drop the cases of other versions
    run_pending(units, log, args.jobs)
    cases = [json.loads(line) for line in log.read_text().splitlines()]
    summary = report(out, cases, names, folds, trials)
    summary.update({"quick": args.quick, "trials": trials, "inner_cv": INNER_CV, "versions": current})
    write_json(out / "metasearchcv_real.json", summary)
    return summary


if __name__ == "__main__":
    main()
