"""Tabular scale: fit time, prediction speed and peak memory of MetaLearnedClassifier/Regressor against rows.

Problem: tables of 20 features with 1,000, 10,000 and 100,000 training rows; classification with 2 and
with 20 classes (``make_classification``: 10 informative features, one cluster per class, 1% of labels
flipped) and regression (Friedman #1 with 15 noise features). Each estimator is scored on the same
100,000 held-out rows (accuracy, or R^2), which also time its predictions. Beside it, a random forest
of 200 trees (``RandomForestClassifier/Regressor(n_estimators=200, n_jobs=1)``) on the same rows.

Every case (task, rows, method) runs in a fresh Python process on one thread (``torch.set_num_threads(1)``,
``OMP_NUM_THREADS=1``), which reports its peak memory as ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
(a process's high-water mark, so one process per case), beside the same figure just before the fit
(the libraries and the data), and the warnings the fit and prediction raised. Before the timed fit, each
process fits the same estimator once on 64 rows (loading the artifact, first calls into the libraries).

Run ``python studies/tabular_scale.py`` (about 20 minutes on one core, most of it the forests at
100,000 rows) or ``--quick`` (a smoke test in this process, without warm-up: 2,100 rows, 500 test rows,
forests of 10 trees; seconds). Writes ``tabular_scale.csv``, ``tabular_scale.json`` and ``tabular_scale.png``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _report import output_dir, parser, print_table, save_figure, write_csv, write_json

TASKS = {"2 classes": 2, "20 classes": 20, "regression": 0}
METHODS = ("MetaLearned", "RandomForest")
FEATURES = 20


def make_pool(task: str, n_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a task, training rows first (the same problem whatever the sizes taken from it)."""
    from sklearn.datasets import make_classification, make_friedman1

    k = TASKS[task]
    if k == 0:
        return make_friedman1(n_samples=n_rows, n_features=FEATURES, noise=1.0, random_state=seed)
    return make_classification(
        n_samples=n_rows,
        n_features=FEATURES,
        n_informative=10,
        n_redundant=5,
        n_classes=k,
        n_clusters_per_class=1,
        flip_y=0.01,
        random_state=seed,
    )


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB (ru_maxrss is in KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def estimator(task: str, method: str, trees: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    from automl_meta.integrations.sklearn import MetaLearnedClassifier, MetaLearnedRegressor

    classify = TASKS[task] > 0
    if method == "RandomForest":
        forest = RandomForestClassifier if classify else RandomForestRegressor
        return forest(n_estimators=trees, n_jobs=1, random_state=0)
    return (MetaLearnedClassifier if classify else MetaLearnedRegressor)(random_state=0)


def measure(
    pool: Path, task: str, n: int, n_test: int, method: str, trees: int, warm_up: bool = True
) -> dict[str, Any]:
    """Fit on the first ``n`` rows of the saved pool, predict its last ``n_test``: times, score, memory."""
    import torch

    torch.set_num_threads(1)
    data = np.load(pool)
    X, y, X_test, y_test = data["X"][:n], data["y"][:n], data["X"][-n_test:], data["y"][-n_test:]
    if warm_up:  # loading the artifact, first calls into the libraries
        estimator(task, method, trees).fit(X[:64], y[:64])
    est = estimator(task, method, trees)
    before = peak_mb()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        est.fit(X, y)
        fit_s = time.perf_counter() - start
        fit_mb = peak_mb()
        start = time.perf_counter()
        pred = est.predict(X_test)
        predict_s = time.perf_counter() - start
    if TASKS[task]:
        score = float(np.mean(pred == y_test))
    else:
        score = float(1 - np.mean((pred - y_test) ** 2) / np.var(y_test))
    return {
        "task": task,
        "n": n,
        "method": method,
        "fit_s": fit_s,
        "predict_s": predict_s,
        "predict_rows_per_s": n_test / predict_s,
        "peak_mb": peak_mb(),
        "fit_peak_mb": fit_mb,
        "before_fit_mb": before,
        "score": score,
        "warnings": len(caught),
    }


def run_case(pool: Path, task: str, n: int, n_test: int, method: str, trees: int, fresh: bool) -> dict[str, Any]:
    """``measure`` in a fresh process (its own memory high-water mark), or here when not ``fresh``."""
    if not fresh:
        return measure(pool, task, n, n_test, method, trees, warm_up=False)
    case = json.dumps({"pool": str(pool), "task": task, "n": n, "n_test": n_test, "method": method, "trees": trees})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, __file__, "--case", case], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plot(path: Path, results: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for task, colour in zip(TASKS, ("C0", "C1", "C2")):
        for method, style in zip(METHODS, ("-o", "--s")):
            rs = [r for r in results if r["task"] == task and r["method"] == method]
            ns = [r["n"] for r in rs]
            axes[0].plot(ns, [r["fit_s"] for r in rs], style, color=colour, label=f"{method}, {task}")
            axes[1].plot(ns, [r["peak_mb"] for r in rs], style, color=colour)
            axes[2].plot(ns, [r["predict_rows_per_s"] for r in rs], style, color=colour)
    for ax, label in zip(axes, ("fit seconds", "peak memory of the process, MB", "predicted rows per second")):
        ax.set(xscale="log", yscale="log", xlabel="training rows (20 features)", ylabel=label)
    axes[0].legend(fontsize=7)
    fig.suptitle("MetaLearned (default-tabular) vs RandomForest(200 trees), one thread")
    save_figure(fig, path)


def summarise(results: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Table rows: each task and size, MetaLearned's figures beside the forest's, and their ratios."""
    headers = ["task", "rows", "fit s", "peak MB", "predict rows/s", "score", "warnings"]
    headers += ["RF fit s", "RF score", "fit / RF fit", "fit+predict / RF's"]
    rows = []
    by = {(r["task"], r["n"], r["method"]): r for r in results}
    for task in TASKS:
        for n in sorted({r["n"] for r in results}):
            m, f = by[(task, n, "MetaLearned")], by[(task, n, "RandomForest")]
            both = (m["fit_s"] + m["predict_s"]) / (f["fit_s"] + f["predict_s"])
            rows.append(
                [task, n, round(m["fit_s"], 2), round(m["peak_mb"]), round(m["predict_rows_per_s"])]
                + [round(m["score"], 3), m["warnings"], round(f["fit_s"], 2), round(f["score"], 3)]
                + [round(m["fit_s"] / f["fit_s"], 3), round(both, 3)]
            )
    return headers, rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(
        __doc__, "2,100 rows (above the threshold) in this process, forests of 10 trees (seconds), for smoke tests"
    )
    p.add_argument("--case", help="run one case given as JSON and print its result (used by the full run)")
    args = p.parse_args(argv)
    if args.case:
        case = json.loads(args.case)
        print(json.dumps(measure(Path(case.pop("pool")), **case)))
        return {}
    out = output_dir(args.out, args.quick)
    sizes, n_test, trees = ((2100,), 500, 10) if args.quick else ((1000, 10_000, 100_000), 100_000, 200)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in TASKS:
            pool = Path(tmp) / f"{task.replace(' ', '_')}.npz"
            X, y = make_pool(task, max(sizes) + n_test)
            np.savez(pool, X=X, y=y)
            for n in sizes:
                for method in METHODS:
                    r = run_case(pool, task, n, n_test, method, trees, fresh=not args.quick)
                    results.append(r)
                    print(f"{task:>10} {n:>7} {method:>12}: fit {r['fit_s']:.2f} s, {r['peak_mb']:.0f} MB", flush=True)
    headers, rows = summarise(results)
    print(f"\n{FEATURES} features, {n_test:,} test rows, one thread; score: accuracy (R^2 for regression)")
    print_table(headers, rows)
    write_csv(out / "tabular_scale.csv", headers, rows)
    big = [r for r in results if r["method"] == "MetaLearned" and r["n"] == max(sizes)]
    summary = {
        "settings": {"sizes": list(sizes), "n_test": n_test, "trees": trees, "features": FEATURES, "quick": args.quick},
        "cases": results,
        "largest": {
            "fit_s_max": max(r["fit_s"] for r in big),
            "peak_mb_max": max(r["peak_mb"] for r in big),
            "predict_rows_per_s_min": min(r["predict_rows_per_s"] for r in big),
            "warnings": sum(r["warnings"] for r in big),
        },
    }
    write_json(out / "tabular_scale.json", summary)
    plot(out / "tabular_scale.png", results)
    print(f"wrote {out / 'tabular_scale.csv'}, {out / 'tabular_scale.json'}, {out / 'tabular_scale.png'}")
    return summary


if __name__ == "__main__":
    main()
