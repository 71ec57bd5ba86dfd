"""Few-shot tabular learning: the default artifact against scikit-learn defaults and a tuned network.

scikit-learn's bundled datasets (classification: iris, wine, breast cancer, digits; regression:
diabetes) are subsampled to n_train in {16, 32, 64, 128} training rows, 20 seeds each, the rest
serving as test rows. Methods:

- ``MetaLearnedClassifier`` / ``MetaLearnedRegressor`` with the bundled ``default-tabular`` artifact;
- LogisticRegression (Ridge for regression), MLP, HistGradientBoosting and RandomForest at their
  defaults (the linear model and the MLP behind a StandardScaler, as scikit-learn's docs advise);
- ``TunedAdam``: the same TabularNet backbone trained from scratch with Adam, its learning rate and
  weight decay tuned by Optuna's TPE over 50 trials on a hold-out quarter of the training rows, then
  refitted on all of them.

Family mode: a family of related stores (:func:`_tabular_family.store_family`: one demand model, store-specific
coefficients) is split into stores for meta-training and new stores. ``automl_meta.meta_fit`` meta-trains
a family artifact on the first; each new store then gets K = 5, 10, 20 rows to fit on and the rest to
test on, and the family artifact (in ``MetaLearnedRegressor``) is compared with ``TunedAdam`` from scratch,
the universal ``default-tabular`` artifact and RidgeCV, by test MSE.

Reports accuracy and log-loss (R^2 for regression), fit time, and mean ranks. Cases run in ``--jobs``
single-threaded worker processes that append each finished case to ``<out>/runs/tabular_fewshot/``, so a
killed run resumes where it stopped (``--fresh`` starts over). ``--quick`` runs a small subset (under a
minute).
``--part datasets`` or ``--part family`` runs one half. Writes ``tabular_fewshot.csv`` (one row per
case and method), ``tabular_fewshot_family.csv``, the headline ``tabular_fewshot.json`` and two plots.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).parent))
import _tabular_family as family
from _parallel import run_each
from _report import output_dir, parser, print_table, save_figure, write_json
from _tabular_tuned_adam import tuned_adam

DATASETS = {
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "digits": "classification",
    "diabetes": "regression",
}
N_TRAIN = (16, 32, 64, 128)


def load(name: str):
    import sklearn.datasets as d

    return getattr(d, f"load_{name}")(return_X_y=True)


def split(X, y, n: int, seed: int, task: str):
    from sklearn.model_selection import train_test_split

    stratify = y if task == "classification" and n >= 2 * len(np.unique(y)) else None
    return train_test_split(X, y, train_size=n, random_state=seed, stratify=stratify)


def methods(task: str):
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from automl_meta.integrations.sklearn import MetaLearnedClassifier, MetaLearnedRegressor

    if task == "classification":
        return {
            "MetaLearnedClassifier": lambda s: MetaLearnedClassifier(random_state=s),
            "LogisticRegression": lambda s: make_pipeline(StandardScaler(), LogisticRegression()),
            "MLPClassifier": lambda s: make_pipeline(StandardScaler(), MLPClassifier(random_state=s)),
            "HistGradientBoosting": lambda s: HistGradientBoostingClassifier(random_state=s),
            "RandomForest": lambda s: RandomForestClassifier(random_state=s),
        }
    return {
        "MetaLearnedRegressor": lambda s: MetaLearnedRegressor(random_state=s),
        "Ridge": lambda s: make_pipeline(StandardScaler(), Ridge()),
        "MLPRegressor": lambda s: make_pipeline(StandardScaler(), MLPRegressor(random_state=s)),
        "HistGradientBoosting": lambda s: HistGradientBoostingRegressor(random_state=s),
        "RandomForest": lambda s: RandomForestRegressor(random_state=s),
    }


FIELDS = ["dataset", "task", "n_train", "seed", "method", "accuracy", "log_loss", "r2", "fit_seconds"]


def run_case(name: str, n: int, seed: int, trials: int) -> list[dict]:
    from sklearn.metrics import accuracy_score, log_loss, r2_score

    task = DATASETS[name]
    X, y = load(name)
    Xtr, Xte, ytr, yte = split(X, y, n, seed, task)
    rows = []

    def record(method, proba_or_pred, seconds):
        row = {
            "dataset": name,
            "task": task,
            "n_train": n,
            "seed": seed,
            "method": method,
            "accuracy": "",
            "log_loss": "",
            "r2": "",
            "fit_seconds": seconds,
        }
        if task == "classification":
            row["accuracy"] = accuracy_score(yte, classes[proba_or_pred.argmax(1)])
            row["log_loss"] = log_loss(yte, np.clip(proba_or_pred, 1e-15, 1), labels=classes)
        else:
            row["r2"] = r2_score(yte, proba_or_pred)
        rows.append(row)

    classes = np.unique(y)
    for method, make in methods(task).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            est = make(seed).fit(Xtr, ytr)
            seconds = time.perf_counter() - t0
            if task == "classification":
                proba = np.zeros((len(Xte), len(classes)))
                proba[:, np.searchsorted(classes, est.classes_)] = est.predict_proba(Xte)
                record(method, proba, seconds)
            else:
                record(method, est.predict(Xte), seconds)
    if trials:
        t0 = time.perf_counter()
        enc = np.searchsorted(classes, ytr) if task == "classification" else ytr.astype(np.float64)
        predict = tuned_adam(Xtr, enc, task, trials, seed)
        seconds = time.perf_counter() - t0
        out = predict(Xte)
        if task == "classification":
            proba = np.zeros((len(Xte), len(classes)))
            proba[:, : out.shape[1]] = out
            record("TunedAdam", proba, seconds)
        else:
            record("TunedAdam", out, seconds)
    return rows


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summarise(rows: list[dict], quick: bool, trials: int) -> dict:
    import pandas as pd

    df = pd.DataFrame(rows)
    df["score"] = np.where(
        df["task"] == "classification",
        pd.to_numeric(df["accuracy"], errors="coerce"),
        pd.to_numeric(df["r2"], errors="coerce"),
    )
    small = df[df["n_train"] <= 64].copy()
    small["method_key"] = small["method"].replace(
        {
            "MetaLearnedRegressor": "MetaLearnedClassifier",
            "Ridge": "LogisticRegression",
            "MLPRegressor": "MLPClassifier",
        }
    )
    small["rank"] = small.groupby(["dataset", "n_train", "seed"])["score"].rank(ascending=False, method="average")
    mean_rank = small.groupby("method_key")["rank"].mean().sort_values()
    table = df.groupby(["dataset", "n_train", "method"])["score"].mean().unstack("method").round(3)
    print("\nMean score (accuracy; R^2 for diabetes) over seeds")
    print(table.to_string())
    print("\nMean rank, n_train <= 64 (1 is best)")
    print_table(["method", "mean rank"], [[m, float(r)] for m, r in mean_rank.items()])
    cls = small[small["task"] == "classification"]
    summary = {
        "mean_rank": {m: float(r) for m, r in mean_rank.items()},
        "quick": quick,
        "tuning_trials": trials,
        "cases": int(df.groupby(["dataset", "n_train", "seed"]).ngroups),
    }
    if trials and "TunedAdam" in set(cls["method"]):
        ll = cls.groupby("method")["log_loss"].apply(lambda s: pd.to_numeric(s).mean())
        tt = small.groupby("method")["fit_seconds"].mean()
        summary["logloss_ratio_vs_tuned_adam"] = float(ll["MetaLearnedClassifier"] / ll["TunedAdam"])
        summary["time_ratio_vs_tuned_adam"] = float(tt["MetaLearnedClassifier"] / tt["TunedAdam"])
        print(
            f"\nlog-loss ratio vs tuned Adam (n_train <= 64): {summary['logloss_ratio_vs_tuned_adam']:.3f}; "
            f"fit-time ratio: {summary['time_ratio_vs_tuned_adam']:.4f}"
        )
    return summary


def plot(path: Path, rows: list[dict]) -> None:
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = pd.DataFrame(rows)
    df["score"] = pd.to_numeric(df["accuracy"].where(df["task"] == "classification", df["r2"]), errors="coerce")
    names = list(DATASETS)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.6))
    for ax, name in zip(np.atleast_1d(axes), names):
        part = df[df["dataset"] == name]
        for method, g in part.groupby("method"):
            m = g.groupby("n_train")["score"].mean()
            ax.plot(m.index, m.values, marker="o", label=method, lw=2.5 if method.startswith("MetaLearned") else 1)
        ax.set(
            xscale="log",
            title=name,
            xlabel="training rows",
            ylabel="accuracy" if DATASETS[name] == "classification" else "R^2",
        )
    np.atleast_1d(axes)[0].legend(fontsize=7)
    save_figure(fig, path, dpi=100)


def _run_shard(path: Path, cases: list, fields: list[str], run, key) -> None:
    """Run the cases not yet in ``path``, appending each one's rows as it ends (so a killed run resumes)."""
    done = {key(r) for r in read_rows(path)}
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fields)
        if new:
            w.writeheader()
        for case in cases:
            if tuple(case) not in done:
                w.writerows(run(*case))
                f.flush()


def _work(job: tuple[int, int, Path, list, list, int, Path, bool]) -> None:
    """A worker: every ``jobs``-th case of each part from ``index`` on, appended to its shard files."""
    index, jobs, path, cases, family_cases, trials, run_dir, quick = job
    torch.set_num_threads(1)
    with threadpool_limits(1):  # one thread per worker: several per process oversubscribe a small machine
        _run_shard(
            path,
            cases[index::jobs],
            FIELDS,
            lambda *c: run_case(*c, trials),
            lambda r: (r["dataset"], int(r["n_train"]), int(r["seed"])),
        )
        _run_shard(
            path.with_name("family-" + path.name),
            family_cases[index::jobs],
            family.FAMILY_FIELDS,
            lambda *c: family.run_family_case(*c, trials, run_dir, quick),
            lambda r: (int(r["k"]), int(r["store"])),
        )


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line: ``--quick`` and ``--out`` of every study, and this study's options."""
    p = parser(__doc__, "a small subset (under a minute), for smoke tests")
    p.add_argument("--seeds", type=int)
    p.add_argument("--trials", type=int, help="TPE trials for TunedAdam (default 50; 0 leaves it out)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument(
        "--part",
        choices=["all", "datasets", "family"],
        default="all",
        help="run only the bundled-datasets cases or only the family-mode cases",
    )
    p.add_argument("--fresh", action="store_true", help="discard the finished cases of the parts being run")
    return p.parse_args(argv)


def _dataset_cases(quick: bool, seeds: int) -> list[tuple[str, int, int]]:
    """The (dataset, n_train, seed) cases: iris and diabetes at 16 and 32 training rows in quick mode."""
    names = ["iris", "diabetes"] if quick else list(DATASETS)
    n_train = (16, 32) if quick else N_TRAIN
    return [(d, n, s) for d in names for n in n_train for s in range(seeds)]


def _discard(run_dir: Path, parts: list[str], shards: list[Path], family_shards: list[Path]) -> None:
    """Delete the finished cases of the parts being run, and the family artifact if family mode is one."""
    for part, files in (("datasets", shards), ("family", family_shards)):
        if part in parts:
            for f in files:
                f.unlink(missing_ok=True)
    if "family" in parts:
        shutil.rmtree(run_dir / "family_artifact", ignore_errors=True)


def _run_cases(run_dir: Path, shards: list[Path], cases: list, family_cases: list, trials: int, quick: bool) -> None:
    """Run the pending cases in one worker per shard file, after meta-training the family artifact they share."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if family_cases:
        family.family_artifact(run_dir, quick)  # once, before the workers that use it
    jobs = len(shards)
    work = [(i, jobs, shards[i], cases, family_cases, trials, run_dir, quick) for i in range(jobs)]
    try:
        run_each(_work, work, jobs)
    except Exception as err:  # the finished cases are kept in the shard files
        raise SystemExit(f"a worker failed ({err!r}); run again to resume from the finished cases") from err


def _report_datasets(out: Path, rows: list[dict], quick: bool, trials: int) -> dict:
    """Write ``tabular_fewshot.csv`` and ``.png`` from the datasets' rows and print their tables; the headline."""
    if not rows:
        return {}
    for r in rows:
        for k in ("n_train", "seed"):
            r[k] = int(r[k])
        r["fit_seconds"] = float(r["fit_seconds"])
    with open(out / "tabular_fewshot.csv", "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
    summary = summarise(rows, quick, trials)
    plot(out / "tabular_fewshot.png", rows)
    return summary


def main(argv: list[str] | None = None) -> dict:
    args = _arguments(argv)
    seeds = args.seeds or (2 if args.quick else 20)
    trials = args.trials if args.trials is not None else (4 if args.quick else 50)
    out = output_dir(args.out, args.quick)
    run_dir = out / "runs" / "tabular_fewshot"
    parts = ["datasets", "family"] if args.part == "all" else [args.part]
    cases = _dataset_cases(args.quick, seeds) if "datasets" in parts else []
    family_cases = family.family_cases(args.quick) if "family" in parts else []
    torch.set_num_threads(1)
    start = time.perf_counter()
    jobs = max(1, args.jobs)
    shards = [run_dir / f"shard{i}of{jobs}-seeds{seeds}-trials{trials}.csv" for i in range(jobs)]
    family_shards = [s.with_name("family-" + s.name) for s in shards]
    if args.fresh or args.quick:
        _discard(run_dir, parts, shards, family_shards)
    _run_cases(run_dir, shards, cases, family_cases, trials, args.quick)
    summary = {"quick": args.quick}
    summary.update(_report_datasets(out, [r for s in shards for r in read_rows(s)], args.quick, trials))
    summary.update(family.report_family(out, [r for s in family_shards for r in read_rows(s)]))
    summary["seconds"] = round(time.perf_counter() - start, 1)
    write_json(out / "tabular_fewshot.json", summary)
    print(f"wrote tabular_fewshot.csv/.json/.png and tabular_fewshot_family.csv/.png under {out}")
    return summary


if __name__ == "__main__":
    main()
