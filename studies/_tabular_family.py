"""Family mode of ``tabular_fewshot.py``: a family of related stores, a family artifact meta-trained on some of
them, and the new stores' few-shot cases, scored, summarised and plotted.

:func:`store_family` draws the stores (one demand model, store-specific coefficients). ``automl_meta.meta_fit``
meta-trains the family artifact on the stores for meta-training (:func:`family_artifact`); each case of
:func:`family_cases` gives a new store K rows to fit on and the rest to test on, and :func:`run_family_case`
scores the family artifact, the ``default-tabular`` artifact, RidgeCV and ``TunedAdam`` from scratch by test
MSE.
"""

from __future__ import annotations

import csv
import time
import warnings
from pathlib import Path

import numpy as np
from _report import save_figure
from _tabular_tuned_adam import tuned_adam

import automl_meta as am

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


def family_cases(quick: bool) -> list[tuple[int, int]]:
    """The (K, new store) cases: every new store at each K (the first two K in quick mode)."""
    n_fam, n_new, _ = family_setup(quick)
    return [(k, store) for k in (FAMILY_K[:2] if quick else FAMILY_K) for store in range(n_fam, n_fam + n_new)]


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
    """Fit every method on K rows of a new store and score it on the store's other rows."""
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


def report_family(out: Path, rows: list[dict]) -> dict:
    """Write ``tabular_fewshot_family.csv`` and ``.png`` from the family rows, print their table; the headline."""
    if not rows:
        return {}
    with open(out / "tabular_fewshot_family.csv", "w", newline="") as f:
        w = csv.DictWriter(f, FAMILY_FIELDS)
        w.writeheader()
        w.writerows(rows)
    summary = summarise_family(rows)
    plot_family(out / "tabular_fewshot_family.png", rows)
    return summary
