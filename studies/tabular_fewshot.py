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

Family mode: a family of related stores (:func:`store_family`: one demand model, store-specific
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
from _parallel import run_each
from _report import output_dir, parser, print_table, save_figure, write_json

import automl_meta as am

DATASETS = {
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "digits": "classification",
    "diabetes": "regression",
}
N_TRAIN = (16, 32, 64, 128)
ADAM_STEPS = 200


def load(name: str):
    import sklearn.datasets as d

    return getattr(d, f"load_{name}")(return_X_y=True)


def split(X, y, n: int, seed: int, task: str):
    from sklearn.model_selection import train_test_split

    stratify = y if task == "classification" and n >= 2 * len(np.unique(y)) else None
    return train_test_split(X, y, train_size=n, random_state=seed, stratify=stratify)


def train_from_scratch(X, y, task: str, lr: float, wd: float, seed: int, n_out: int):
    """TabularNet from a random initialisation, full-batch Adam; returns a predict function."""
    torch.manual_seed(seed)
    mean, std = X.mean(0), np.where(X.std(0) > 1e-12, X.std(0), 1.0)
    xt = torch.as_tensor(np.clip((X - mean) / std, -6, 6), dtype=torch.float32)
    net = am.models.TabularNet(hidden=64, depth=2, max_features=max(X.shape[1], 1), max_outputs=n_out, seed=seed)
    with torch.no_grad():
        net.head.weight.normal_(0, 0.1)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=wd)
    if task == "classification":
        yt = torch.as_tensor(y, dtype=torch.int64)
        loss_fn = lambda out: torch.nn.functional.cross_entropy(out, yt)  # noqa: E731 - short local helper
    else:
        ym, ys = y.mean(), y.std() + 1e-12
        yt = torch.as_tensor((y - ym) / ys, dtype=torch.float32)
        loss_fn = lambda out: ((out[:, 0] - yt) ** 2).mean()  # noqa: E731 - short local helper
    for _ in range(ADAM_STEPS):
        opt.zero_grad()
        loss = loss_fn(net(xt))
        if not torch.isfinite(loss):
            break
        loss.backward()
        opt.step()

    @torch.no_grad()
    def predict(Xn):
        out = net(torch.as_tensor(np.clip((Xn - mean) / std, -6, 6), dtype=torch.float32))
        if task == "classification":
            return torch.softmax(out.double(), -1).numpy()
        return out[:, 0].double().numpy() * ys + ym

    return predict


def tuned_adam(X, y, task: str, trials: int, seed: int):
    import optuna
    from sklearn.metrics import log_loss, mean_squared_error
    from sklearn.model_selection import train_test_split

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_out = int(y.max()) + 1 if task == "classification" else 1
    n_holdout = int(np.ceil(0.25 * len(y)))
    strat = y if task == "classification" and min(np.bincount(y)) >= 2 and n_holdout >= len(np.unique(y)) else None
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=strat)

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        wd = trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
        pred = train_from_scratch(Xa, ya, task, lr, wd, seed, n_out)(Xb)
        if not np.all(np.isfinite(pred)):
            return float("inf")
        return log_loss(yb, pred, labels=range(n_out)) if task == "classification" else mean_squared_error(yb, pred)

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    best = study.best_params
    return train_from_scratch(X, y, task, best["lr"], best["weight_decay"], seed, n_out)


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


# -- family mode ----------------------------------------------------------------------------------
FAMILY_K = (5, 10, 20)
FAMILY_FIELDS = ["k", "store", "method", "mse", "fit_seconds"]
FAMILY_ROWS = 120  # rows per store: K of them to fit on, the rest to test on


def store_family(n_stores: int, seed: int):
    """A family of related regression datasets: the daily log-sales of stores that share how demand works.

    Every store follows one form -- a price elasticity, a promotion lift, a weekly pattern, a
    temperature response and a holiday effect -- with its own coefficients drawn around the family's,
    plus noise. Features: price, promotion, temperature, weekday (sin and cos), holiday.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    frames = []
    for store in range(n_stores):
        base, elasticity, lift = rng.normal(3.0, 0.6), rng.normal(-1.5, 0.5), rng.normal(0.5, 0.25)
        weekly, phase, heat, festive = (
            rng.normal(0.4, 0.15),
            rng.normal(0.0, 0.6),
            rng.normal(0.0, 0.4),
            rng.normal(0.6, 0.3),
        )
        n = FAMILY_ROWS
        price, promo = rng.lognormal(0.0, 0.3, n), (rng.random(n) < 0.3).astype(float)
        temp, day, holiday = rng.normal(15, 8, n), rng.integers(0, 7, n), (rng.random(n) < 0.08).astype(float)
        angle = 2 * np.pi * day / 7
        sales = (
            base
            + elasticity * np.log(price)
            + lift * promo * (1 + 0.5 * holiday)
            + weekly * np.sin(angle + phase)
            + heat * np.tanh((temp - 15) / 8)
            + festive * holiday
            + rng.normal(0, 0.15, n)
        )
        frames.append(
            pd.DataFrame(
                {
                    "store": store,
                    "price": price,
                    "promotion": promo,
                    "temperature": temp,
                    "weekday_sin": np.sin(angle),
                    "weekday_cos": np.cos(angle),
                    "holiday": holiday,
                    "sales": sales,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


FAMILY_FEATURES = ["price", "promotion", "temperature", "weekday_sin", "weekday_cos", "holiday"]


def family_setup(quick: bool) -> tuple[int, int, int]:
    """(stores for meta-training, new stores, meta-training iterations)."""
    return (8, 3, 30) if quick else (60, 20, 3000)


def family_artifact(run_dir: Path, quick: bool):
    """Meta-train (or resume) the family artifact on the training stores."""
    n_train, n_new, iterations = family_setup(quick)
    df = store_family(n_train + n_new, seed=0)
    train = df[df["store"] < n_train]
    tasks = am.tasks.from_groups(
        train, group="store", target="sales", features=FAMILY_FEATURES, shots=10, query_shots=30
    )
    return am.meta_fit(
        tasks, iterations=iterations, checkpoint_dir=run_dir / "family_artifact", resume=True, seed=0, verbose=0
    )


def run_family_case(k: int, store: int, trials: int, run_dir: Path, quick: bool) -> list[dict]:
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import mean_squared_error

    from automl_meta.integrations.sklearn import MetaLearnedRegressor

    n_train, n_new, _ = family_setup(quick)
    df = store_family(n_train + n_new, seed=0)
    part = df[df["store"] == store]
    X, y = part[FAMILY_FEATURES], part["sales"].to_numpy()
    order = np.random.default_rng([store, k]).permutation(len(y))
    fit_idx, test_idx = order[:k], order[k:]
    artifact = am.load(run_dir / "family_artifact" / "artifact.ameta")
    rows = []

    def record(method, make):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            predict = make()
            seconds = time.perf_counter() - t0
        rows.append(
            {
                "k": k,
                "store": store,
                "method": method,
                "fit_seconds": seconds,
                "mse": mean_squared_error(y[test_idx], predict(X.iloc[test_idx])),
            }
        )

    Xk, yk = X.iloc[fit_idx], y[fit_idx]
    record("MetaLearned (family)", lambda: MetaLearnedRegressor(artifact, random_state=store).fit(Xk, yk).predict)
    record("MetaLearned (default-tabular)", lambda: MetaLearnedRegressor(random_state=store).fit(Xk, yk).predict)
    record("RidgeCV", lambda: RidgeCV().fit(Xk, yk).predict)
    if trials:
        record(
            "TunedAdam",
            lambda: (lambda f: lambda Xn: f(np.asarray(Xn)))(
                tuned_adam(Xk.to_numpy(), yk, "regression", trials, store)
            ),
        )
    return rows


def summarise_family(rows: list[dict]) -> dict:
    import pandas as pd

    df = pd.DataFrame(rows)
    df["mse"], df["k"] = pd.to_numeric(df["mse"]), pd.to_numeric(df["k"])
    table = df.groupby(["k", "method"])["mse"].mean().unstack("method")
    print("\nFamily mode: mean test MSE on new stores (log-sales), by shots K")
    print(table.round(4).to_string())
    if "TunedAdam" not in table:
        return {}
    ratio = table["MetaLearned (family)"] / table["TunedAdam"]
    print(
        "error ratio, family artifact / tuned Adam from scratch: "
        + ", ".join(f"K={k}: {r:.3f}" for k, r in ratio.items())
    )
    return {
        "family_error_ratio_vs_scratch": {str(int(k)): float(r) for k, r in ratio.items()},
        "family_new_groups": int(df["store"].nunique()),
    }


def plot_family(path: Path, rows: list[dict]) -> None:
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = pd.DataFrame(rows)
    df["mse"], df["k"] = pd.to_numeric(df["mse"]), pd.to_numeric(df["k"])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for method, g in df.groupby("method"):
        m = g.groupby("k")["mse"].mean()
        ax.plot(m.index, m.values, marker="o", label=method, lw=2.5 if "family" in method else 1)
    ax.set(
        xlabel="rows of the new store (K)",
        ylabel="test MSE",
        yscale="log",
        xticks=list(FAMILY_K),
        title="Family mode: new stores",
    )
    ax.legend(fontsize=7)
    save_figure(fig, path, dpi=100)


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
            FAMILY_FIELDS,
            lambda *c: run_family_case(*c, trials, run_dir, quick),
            lambda r: (int(r["k"]), int(r["store"])),
        )


def main(argv: list[str] | None = None) -> dict:
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
    args = p.parse_args(argv)
    seeds = args.seeds or (2 if args.quick else 20)
    trials = args.trials if args.trials is not None else (4 if args.quick else 50)
    names = ["iris", "diabetes"] if args.quick else list(DATASETS)
    n_train = (16, 32) if args.quick else N_TRAIN
    out = output_dir(args.out, args.quick)
    run_dir = out / "runs" / "tabular_fewshot"
    parts = ["datasets", "family"] if args.part == "all" else [args.part]
    cases = [(d, n, s) for d in names for n in n_train for s in range(seeds)] if "datasets" in parts else []
    n_fam, n_new, _ = family_setup(args.quick)
    family_cases = (
        [(k, store) for k in (FAMILY_K[:2] if args.quick else FAMILY_K) for store in range(n_fam, n_fam + n_new)]
        if "family" in parts
        else []
    )
    torch.set_num_threads(1)
    start = time.perf_counter()
    jobs = max(1, args.jobs)
    shards = [run_dir / f"shard{i}of{jobs}-seeds{seeds}-trials{trials}.csv" for i in range(jobs)]
    family_shards = [s.with_name("family-" + s.name) for s in shards]
    if args.fresh or args.quick:
        for part, files in (("datasets", shards), ("family", family_shards)):
            if part in parts:
                for f in files:
                    f.unlink(missing_ok=True)
        if "family" in parts:
            shutil.rmtree(run_dir / "family_artifact", ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    if family_cases:
        family_artifact(run_dir, args.quick)  # once, before the workers that use it
    work = [(i, jobs, shards[i], cases, family_cases, trials, run_dir, args.quick) for i in range(jobs)]
    try:
        run_each(_work, work, jobs)
    except Exception as err:  # the finished cases are kept in the shard files
        raise SystemExit(f"a worker failed ({err!r}); run again to resume from the finished cases") from err
    summary = {"quick": args.quick}
    rows = [r for s in shards for r in read_rows(s)]
    if rows:
        for r in rows:
            for k in ("n_train", "seed"):
                r[k] = int(r[k])
            r["fit_seconds"] = float(r["fit_seconds"])
        with open(out / "tabular_fewshot.csv", "w", newline="") as f:
            w = csv.DictWriter(f, FIELDS)
            w.writeheader()
            w.writerows(rows)
        summary.update(summarise(rows, args.quick, trials))
        plot(out / "tabular_fewshot.png", rows)
    family_rows = [r for s in family_shards for r in read_rows(s)]
    if family_rows:
        with open(out / "tabular_fewshot_family.csv", "w", newline="") as f:
            w = csv.DictWriter(f, FAMILY_FIELDS)
            w.writeheader()
            w.writerows(family_rows)
        summary.update(summarise_family(family_rows))
        plot_family(out / "tabular_fewshot_family.png", family_rows)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    write_json(out / "tabular_fewshot.json", summary)
    print(f"wrote tabular_fewshot.csv/.json/.png and tabular_fewshot_family.csv/.png under {out}")
    return summary


if __name__ == "__main__":
    main()
