"""MetaLearnedClassifier against scikit-learn's defaults on the corpus's held-out classification tasks.

Tasks: the 35 classification tasks of ``load_corpus("evaluation")`` (never a meta-train task, no other data).
Their shapes (rows after the corpus's 10,000-row cap; columns after ``make_preprocessor``'s one-hot):

- classes: 2 (17 tasks), 3 (5), 4 (6), 5 (4), 6 (2), 7 (1); none has more than 10, the model's outputs, so
  the output code for more classes is not exercised here;
- features: 2 to 207 raw (median 8), 2 to 207 encoded (median 12); one task (``gap/crohn``, 207 columns)
  is wider than the model's 128 inputs; 19 tasks have categorical columns, 8 have missing values;
- rows: 100 to 10,000 (median 432); 33 tasks have at least 16 + 100 rows, 30 have 64 + 100, 20 have
  256 + 100, 9 have 1,024 + 100, 4 have 4,096 + 100 and none has 10,000 + 100 (the corpus caps tables at
  10,000 rows): ``n_train = 10,000`` cannot be measured here, and 4,096 stands in as the largest size.

Cases: for each task and ``n_train`` in (16, 64, 256, 1024, 4096, 10000) with at least ``n_train + 100`` rows,
:data:`SEEDS` seeds (20 up to 64 rows, 10 beyond) of a stratified subsample that keeps one row of every class
in training (so no class is ever absent: no task has more than 7 classes); the test rows are the others, at
most 5,000. 1,590 cases in all.

Methods, at defaults: ``MetaLearnedClassifier(random_state=seed)`` with the bundled artifact, given the raw
DataFrame (it encodes NaN and categories itself); ``LogisticRegression``, ``RandomForestClassifier(200 trees,
n_jobs=1)``, ``HistGradientBoostingClassifier`` and ``MLPClassifier``, each behind ``make_preprocessor()`` in a
Pipeline, ``random_state=seed`` where they take one. Convergence warnings are counted, not printed.

Metrics per case: log-loss over all classes (the true class's probability clipped at 1e-15), accuracy, and
fit + predict seconds in a single-threaded worker after a warm-up (imports and the artifact's first load are not
timed). Per ``n_train``, over the tasks: mean log-loss and accuracy, the mean log-loss rank among the five
(per task, seeds averaged first), and the time ratio to RandomForest (geometric mean), each with a 95%
percentile bootstrap interval over tasks (10,000 resamples). Acceptance flags: MetaLearnedClassifier has the
best mean log-loss rank (strictly lower than every baseline's; the JSON adds the share of bootstrap resamples
in which it is) at every ``n_train`` up to 1,024; beyond, its mean log-loss is within 5% of the best
baseline's; its time ratio to RandomForest is at most 1 at every ``n_train``. Regression tasks are not run.

Each finished case is appended to ``<out>/tabular_real_cases.jsonl.gz`` (a killed run resumes); a case records
the versions it ran with (scikit-learn, torch, the package, the artifact's tensor checksum, a digest of the
estimator's source) and the task's fingerprint, and cases of other versions run again.

    python studies/tabular_real.py --jobs 2         # full run: 1,590 cases, resumable
    python studies/tabular_real.py --quick          # 2 small tasks, n_train 16 and 64, 1 seed
    python studies/tabular_real.py --n-train 1024 --tasks Car,Tuna --limit 3    # a few cases, to time them

Measured cost of one case (all five methods) with ``--jobs 1`` on a shared, busy 2-core machine, 39 cases:
0.5-1.1 s at 16 rows, 0.7-1.1 s at 64, 1.3-3.8 s at 256, 3.5-5.7 s at 1,024, 3.2-12.8 s at 4,096, plus about
8 s per worker to load the corpus and warm up. That puts the full run at about 35-40 worker-minutes: about
20-25 minutes with ``--jobs 2``. ``--quick`` takes about 10 s.

Writes ``tabular_real.csv`` (per ``n_train`` and method), ``tabular_real.json`` (headline and acceptance flags)
and ``tabular_real.png`` (log-loss rank and time ratio against ``n_train``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _report import output_dir, parser, print_table, save_figure, write_csv, write_json
from _tabular_real_cases import METHODS, MIN_TEST, load_cases, run_pending, tasks, versions

N_TRAIN = (16, 64, 256, 1024, 4096, 10000)
SEEDS = {16: 20, 64: 20, 256: 10, 1024: 10, 4096: 10, 10000: 5}
QUICK_N_TRAIN, QUICK_TASKS = (16, 64), 2
RANKED_UP_TO, WITHIN = 1024, 0.05
BOOTSTRAP = 10_000
Unit = tuple[str, int, int]


def plan(quick: bool, n_train: list[int] | None, only: list[str] | None) -> list[Unit]:
    """Every (task, n_train, seed) of the run, in increasing n_train (so a partial run covers small sizes)."""
    pool = sorted(tasks().values(), key=lambda t: (len(t.y), t.name))
    if only:
        pool = [t for t in pool if any(s in t.name for s in only)]
    levels = n_train or list(QUICK_N_TRAIN if quick else N_TRAIN)
    if quick:
        pool = [t for t in pool if len(t.y) >= max(levels) + MIN_TEST][:QUICK_TASKS]
    return [
        (t.name, n, seed)
        for n in levels
        for t in pool
        if len(t.y) >= n + MIN_TEST
        for seed in range(1 if quick else SEEDS.get(n, 3))
    ]


def per_task(cases: list[dict[str, Any]], units: list[Unit], n: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """Tasks whose planned seeds at ``n`` are all done, with their seed-averaged metrics, [task, method]."""
    planned: dict[str, set[int]] = {}
    for name, level, seed in units:
        if level == n:
            planned.setdefault(name, set()).add(seed)
    by_task: dict[str, list[dict[str, Any]]] = {}
    for c in cases:
        if c["n_train"] == n and c["seed"] in planned.get(c["task"], ()):
            by_task.setdefault(c["task"], []).append(c)
    names = [t for t in planned if len({c["seed"] for c in by_task.get(t, [])}) == len(planned[t])]

    def mean(key: Any) -> np.ndarray:
        return np.array([[np.mean([key(c, m) for c in by_task[t]]) for m in METHODS] for t in names]).reshape(-1, 5)

    return names, {
        "log_loss": mean(lambda c, m: c[m]["log_loss"]),
        "accuracy": mean(lambda c, m: c[m]["accuracy"]),
        "log_time_ratio": mean(lambda c, m: np.log(c[m]["seconds"] / c["RandomForest"]["seconds"])),
        "seconds": mean(lambda c, m: c[m]["seconds"]),
        "warnings": mean(lambda c, m: c[m]["convergence_warnings"]),
    }


def interval(boot: np.ndarray) -> list[list[float]]:
    """95% percentile interval of each column of bootstrap statistics."""
    return np.percentile(boot, [2.5, 97.5], axis=0).T.tolist()


def summarise_level(n: int, names: list[str], m: dict[str, np.ndarray], cases: int) -> dict[str, Any]:
    """Means over tasks with bootstrap intervals, and the acceptance flags at one ``n_train``."""
    from scipy.stats import rankdata

    ranks = rankdata(m["log_loss"], axis=1)
    idx = np.random.default_rng(0).integers(0, len(names), (BOOTSTRAP, len(names)))
    boot = {k: v[idx].mean(1) for k, v in {**m, "rank": ranks}.items()}
    ci = {k: interval(b) for k, b in boot.items()}
    methods = {
        name: {
            "log_loss": float(m["log_loss"][:, j].mean()),
            "log_loss_ci95": ci["log_loss"][j],
            "accuracy": float(m["accuracy"][:, j].mean()),
            "accuracy_ci95": ci["accuracy"][j],
            "log_loss_rank": float(ranks[:, j].mean()),
            "log_loss_rank_ci95": ci["rank"][j],
            "time_ratio_vs_rf": float(np.exp(m["log_time_ratio"][:, j].mean())),
            "time_ratio_vs_rf_ci95": np.exp(ci["log_time_ratio"][j]).tolist(),
            "seconds_per_case": float(m["seconds"][:, j].mean()),
            "convergence_warnings_per_case": float(m["warnings"][:, j].mean()),
        }
        for j, name in enumerate(METHODS)
    }
    ours = methods[METHODS[0]]
    best_other = boot["log_loss"][:, 1:].min(1)
    level: dict[str, Any] = {"tasks": len(names), "cases": cases, "task_names": names, "methods": methods}
    if n <= RANKED_UP_TO:
        others = min(methods[k]["log_loss_rank"] for k in METHODS[1:])
        level["rank_best"] = bool(ours["log_loss_rank"] < others)
        level["rank_best_bootstrap_share"] = float((boot["rank"][:, 0] < boot["rank"][:, 1:].min(1)).mean())
    else:
        ratio = ours["log_loss"] / min(methods[k]["log_loss"] for k in METHODS[1:])
        level["log_loss_ratio_to_best_baseline"] = float(ratio)
        level["log_loss_ratio_ci95"] = np.percentile(boot["log_loss"][:, 0] / best_other, [2.5, 97.5]).tolist()
        level["within_5pct"] = bool(ratio <= 1 + WITHIN)
    level["time_ratio_le_1"] = bool(ours["time_ratio_vs_rf"] <= 1)
    return level


def _fmt(value: float, ci: list[float]) -> str:
    return f"{value:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]"


def print_level(n: int, level: dict[str, Any]) -> list[list[Any]]:
    """Print one ``n_train``'s table; return its CSV rows."""
    print(f"\nn_train = {n}: {level['tasks']} tasks, {level['cases']} cases (95% bootstrap intervals over tasks)")
    rows, csv_rows = [], []
    for name, s in level["methods"].items():
        rows.append(
            [
                name,
                _fmt(s["log_loss"], s["log_loss_ci95"]),
                _fmt(s["accuracy"], s["accuracy_ci95"]),
                _fmt(s["log_loss_rank"], s["log_loss_rank_ci95"]),
                _fmt(s["time_ratio_vs_rf"], s["time_ratio_vs_rf_ci95"]),
                s["seconds_per_case"],
                s["convergence_warnings_per_case"],
            ]
        )
        csv_rows.append([n, name, level["tasks"], level["cases"], *(v for k in _KEYS for v in _flat(s, k))])
    print_table(["method", "log-loss", "accuracy", "log-loss rank", "time / RF", "seconds", "conv. warn."], rows)
    return csv_rows


_KEYS = ("log_loss", "accuracy", "log_loss_rank", "time_ratio_vs_rf")


def _flat(s: dict[str, Any], key: str) -> list[float]:
    return [round(float(v), 6) for v in [s[key], *s[f"{key}_ci95"]]]


def acceptance(levels: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Print and return the acceptance flags of every measured ``n_train``."""
    rows, flags = [], {}
    for n, level in levels.items():
        ours = level["methods"][METHODS[0]]
        if "rank_best" in level:
            rows.append([n, "best mean log-loss rank", f"{ours['log_loss_rank']:.3g}", _yes(level["rank_best"])])
        else:
            ratio = level["log_loss_ratio_to_best_baseline"]
            rows.append(
                [n, "log-loss within 5% of the best baseline", f"ratio {ratio:.3g}", _yes(level["within_5pct"])]
            )
        time_ratio = f"ratio {ours['time_ratio_vs_rf']:.3g}"
        rows.append([n, "time no more than RandomForest's", time_ratio, _yes(level["time_ratio_le_1"])])
        flags[str(n)] = {k: level[k] for k in ("rank_best", "within_5pct", "time_ratio_le_1") if k in level}
    print("\nAcceptance, MetaLearnedClassifier:")
    print_table(["n_train", "criterion", "value", "met"], rows)
    return flags


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def report(out: Path, cases: list[dict[str, Any]], units: list[Unit]) -> dict[str, Any]:
    """Tables, CSV, figure and the summary of every ``n_train`` with at least two complete tasks."""
    levels: dict[int, dict[str, Any]] = {}
    csv_rows: list[list[Any]] = []
    for n in sorted({u[1] for u in units}):
        names, metrics = per_task(cases, units, n)
        if len(names) < 2:
            print(f"\nn_train = {n}: {len(names)} complete tasks, not reported", flush=True)
            continue
        done = sum(c["n_train"] == n and c["task"] in names for c in cases)
        levels[n] = summarise_level(n, names, metrics, done)
        csv_rows += print_level(n, levels[n])
    headers = ["n_train", "method", "tasks", "cases"]
    headers += [f"{k}{s}" for k in _KEYS for s in ("", "_ci_low", "_ci_high")]
    write_csv(out / "tabular_real.csv", headers, csv_rows)
    summary: dict[str, Any] = {"levels": {str(n): v for n, v in levels.items()}}
    if levels:
        summary["acceptance"] = acceptance(levels)
        _plot(out / "tabular_real.png", levels)
    return summary


def _plot(path: Path, levels: dict[int, dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = np.array(sorted(levels))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for j, name in enumerate(METHODS):
        stats = [levels[n]["methods"][name] for n in ns]
        x = ns * 1.04 ** (j - 2)  # side by side, so the intervals do not overlap
        for ax, key in ((left, "log_loss_rank"), (right, "time_ratio_vs_rf")):
            if key == "time_ratio_vs_rf" and name == "RandomForest":
                continue
            y = np.array([s[key] for s in stats])
            err = np.abs(np.array([s[f"{key}_ci95"] for s in stats]).T - y)
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name, color=f"C{j}", lw=2.5 if j == 0 else 1)
    left.set(xscale="log", xlabel="training rows", ylabel="mean log-loss rank (1 is best)", title="Log-loss rank")
    right.set(xscale="log", yscale="log", xlabel="training rows", ylabel="fit + predict time / RandomForest's")
    right.axhline(1, color="grey", lw=0.8)
    for ax in (left, right):
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.minorticks_off()
    right.set_title("Time ratio to RandomForest (200 trees)")
    left.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__, "2 small tasks, n_train 16 and 64, 1 seed (well under a minute)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--n-train", help="comma-separated training sizes (default all)")
    p.add_argument("--tasks", help="comma-separated parts of task names to keep (default all)")
    p.add_argument("--limit", type=int, help="run at most this many pending cases, then report")
    args = p.parse_args(argv)
    out = output_dir(args.out, args.quick)
    n_train = [int(n) for n in args.n_train.split(",")] if args.n_train else None
    units = plan(args.quick, n_train, args.tasks.split(",") if args.tasks else None)
    current = versions()
    log = out / "tabular_real_cases.jsonl.gz"
    cases = load_cases(log, current, {name: t.fingerprint for name, t in tasks().items()})
    have = {(c["task"], c["n_train"], c["seed"]) for c in cases}
    pending = [u for u in units if u not in have][: args.limit]
    missing = [n for n in (n_train or N_TRAIN) if not any(u[1] == n for u in units)]
    print(f"{len(units)} cases planned, {len(pending)} to run; no task has enough rows for n_train {missing}")
    run_pending(pending, log, args.jobs)
    cases = load_cases(log, current, {name: t.fingerprint for name, t in tasks().items()})
    summary = report(out, cases, units)
    summary.update({"quick": args.quick, "versions": current, "n_train_without_tasks": missing})
    planned = set(units)
    summary["cases"] = sum((c["task"], c["n_train"], c["seed"]) in planned for c in cases)
    summary["cases_planned"] = len(units)
    write_json(out / "tabular_real.json", summary)
    return summary


if __name__ == "__main__":
    main()
