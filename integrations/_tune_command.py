"""``automl-meta tune``: tune a scikit-learn estimator on a CSV file, warm-started from the bundled knowledge.

The estimator runs in a Pipeline behind :func:`automl_meta.corpus.make_preprocessor` (categories one-hot,
missing values imputed), as in the knowledge base, and is tuned by :class:`MetaSearchCV`. ``--compare``
runs TPE with the same budget and folds beside it; the command prints both best-so-far curves and the
estimator's defaults, and ``--plot`` draws them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from automl_meta.cli import CLIError

_SCORING = {"classification": "accuracy", "regression": "r2"}


def add_command(subparsers: Any) -> None:
    """Add ``tune`` to the ``automl-meta`` command (the ``automl_meta.commands`` entry point)."""
    p = subparsers.add_parser(
        "tune",
        help="tune a scikit-learn estimator on a CSV file, warm-started from similar datasets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="CSV file with a header row, one sample per row")
    p.add_argument("--target", required=True, help="the column to predict")
    p.add_argument("--estimator", required=True, help="class name, e.g. HistGradientBoostingClassifier")
    p.add_argument("--trials", type=int, default=20, help="trials (default 20)")
    p.add_argument("--cv", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--scoring", help="a scikit-learn scorer name (default accuracy or r2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samplers and of the estimator (default 0)")
    p.add_argument("--jobs", type=int, default=1, help="trials run at once (default 1)")
    p.add_argument("--compare", action="store_true", help="also tune with TPE on the same budget and folds")
    p.add_argument("--plot", type=Path, help="write the best-so-far curves to this PNG file")
    p.add_argument("--store", help="experience store URL (default: $AUTOML_META_STORE or the user data directory)")
    p.add_argument("--record", action="store_true", help="add the warm-started run's trials to the store")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Read the data, tune, print the curves and the best configuration; the exit code."""
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import cross_val_score

    if args.trials < 1 or args.cv < 2:
        raise CLIError(f"--trials must be at least 1 and --cv at least 2 (got {args.trials} and {args.cv}).")
    X, y = read_table(args.data, args.target)
    pipeline = make_estimator(args.estimator)
    # The estimator's own randomness (forests, feature subsampling, MLP weights) is seeded too, so that a
    # configuration scores the same in both searches and a run repeats.
    pipeline.set_params(**{name: args.seed for name in pipeline.get_params() if name.endswith("random_state")})
    task_type = "classification" if is_classifier(pipeline) else "regression"
    check_target(y, task_type, args.estimator)
    scoring = args.scoring or _SCORING[task_type]
    print(
        f"{args.data}: {len(y)} rows, {X.shape[1]} features; {task_type} of {args.target!r} ({scoring}, {args.cv}-fold)"
    )
    default = float(np.mean(cross_val_score(clone(pipeline), X, y, cv=args.cv, scoring=scoring)))
    runs, curves = searches(pipeline, args, X, y, task_type, scoring), {}
    for name, search in runs.items():
        started = time.perf_counter()
        search.fit(X, y)
        seconds = time.perf_counter() - started
        curves[name] = np.maximum.accumulate([-np.inf if t.value is None else t.value for t in search.study_.trials])
        print(f"{name}: best {search.best_score_:.4f} after {len(search.study_.trials)} trials ({seconds:.1f} s)")
    print_curves(curves, default, scoring)
    best = runs["MetaLearnedSampler"].best_params_
    print("best configuration (MetaLearnedSampler):", json.dumps(_plain(best), sort_keys=True))
    if args.plot:
        plot(args.plot, curves, default, scoring, f"{args.estimator} on {Path(args.data).name}")
        print(f"plot: {args.plot}")
    return 0


def read_table(path: str, target: str) -> tuple[Any, np.ndarray]:
    """The CSV's features (a DataFrame) and target; rows without a target are dropped."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise CLIError(f"cannot read {path} as CSV: {exc}") from None
    if target not in frame.columns:
        raise CLIError(f"{path} has no column {target!r}; its columns are {', '.join(map(str, frame.columns))}.")
    frame = frame[frame[target].notna()]
    if len(frame) < 2 * 5 or frame.shape[1] < 2:
        raise CLIError(f"{path} needs at least 10 rows with a target and one feature column besides {target!r}.")
    y = frame.pop(target).to_numpy()
    return frame, y


def make_estimator(name: str) -> Any:
    """``make_pipeline(make_preprocessor(), Estimator())`` for a class name that has a search space."""
    from sklearn.pipeline import make_pipeline

    from automl_meta.corpus import make_preprocessor
    from automl_meta.spaces import SPACES, available

    classes = {cls.__name__.lower(): cls for space in SPACES.values() for cls in space.estimators}
    if name.lower() not in classes:
        raise CLIError(f"no search space for estimator {name!r}; choose one of {', '.join(available())}.")
    return make_pipeline(make_preprocessor(), classes[name.lower()]())


def check_target(y: np.ndarray, task_type: str, estimator: str) -> None:
    """A classifier needs a target of classes and a regressor numbers: say so before any fit."""
    from sklearn.utils.multiclass import type_of_target

    kind = type_of_target(y)
    if task_type == "classification" and kind == "continuous":
        raise CLIError(f"the target is continuous, {estimator} is a classifier: choose a regressor.")
    if task_type == "regression" and not np.issubdtype(y.dtype, np.number):
        raise CLIError(f"the target is not numeric, {estimator} is a regressor: choose a classifier.")
    if task_type == "classification" and np.unique(y).size < 2:
        raise CLIError("the target has a single class: there is nothing to classify.")


def searches(pipeline: Any, args: argparse.Namespace, X: Any, y: Any, task_type: str, scoring: str) -> dict:
    """The warm-started search (and TPE's with ``--compare``), each a MetaSearchCV on the same folds."""
    from optuna.samplers import TPESampler

    from automl_meta.store import TaskDescription

    from .optuna import ExperienceRecorder, MetaLearnedSampler
    from .sklearn import MetaSearchCV

    task = TaskDescription.from_data(X, y, task_type=task_type)
    callbacks = [ExperienceRecorder(store=args.store, task=task)] if args.record else None
    common = {"n_trials": args.trials, "cv": args.cv, "scoring": scoring, "n_jobs": args.jobs, "verbose": 1}
    meta = MetaLearnedSampler(store=args.store, task=task, seed=args.seed)
    out = {"MetaLearnedSampler": MetaSearchCV(pipeline, sampler=meta, callbacks=callbacks, **common)}
    if args.compare:
        out["TPESampler"] = MetaSearchCV(pipeline, sampler=TPESampler(seed=args.seed), **common)
    return out


def print_curves(curves: dict[str, np.ndarray], default: float, scoring: str) -> None:
    """The best-so-far score per trial, one column per sampler (every trial up to 30, then a selection)."""
    n = max(len(c) for c in curves.values())
    rows = range(1, n + 1) if n <= 30 else sorted({1, 2, 3, 5, 10, 15, 20, 30, 50, 100, 200, n} & set(range(1, n + 1)))
    names = list(curves)
    print(f"\nbest {scoring} so far (the estimator's defaults: {default:.4f})")
    print("trial  " + "  ".join(f"{name:>18}" for name in names))
    for i in rows:
        cells = [f"{curves[k][i - 1]:18.4f}" if i <= len(curves[k]) else " " * 18 for k in names]
        print(f"{i:5d}  " + "  ".join(cells))
    sys.stdout.flush()


def plot(path: Path, curves: dict[str, np.ndarray], default: float, scoring: str, title: str) -> None:
    """Best-so-far curves against trials, the defaults' score as a dashed line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install matplotlib") from None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, marker=".", label=name)
    ax.axhline(default, color="grey", linestyle="--", label="defaults")
    ax.set(xlabel="trial", ylabel=f"best cross-validated {scoring} so far", title=title)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready values (NumPy scalars become Python numbers)."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}
