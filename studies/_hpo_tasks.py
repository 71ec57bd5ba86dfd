"""The tasks, search spaces and objectives shared by ``build_meta_dataset.py`` and ``warmstart_hpo.py``.

Tasks: scikit-learn's bundled datasets (iris, wine, breast cancer, digits, diabetes) and synthetic ones
(``make_classification`` with varied sizes, class counts, separations and label noise;
``make_regression`` and Friedman #1), at most 400 rows each, split into ``FOLDS`` cross-validation folds
with a fixed seed (stratified for classification), features and regression targets standardised on each
fold's training rows.

Search spaces:

- ``mlp``: a one-hidden-layer ReLU network trained for 100 mini-batch updates with SGD (momentum) or
  Adam (``momentum`` is then beta1): optimizer, learning rate, momentum, weight decay, batch size, width;
- ``hgb``: ``HistGradientBoosting`` with 15 boosting iterations: learning_rate, max_leaf_nodes,
  min_samples_leaf, l2_regularization.

The objective is the validation loss (cross-entropy for classification, mean squared error of the
standardised target for regression) averaged over the folds, each fold's loss capped at a fixed value so
that diverged runs rank last instead of producing infinities. Cross-validation, not one hold-out split,
because with at most 120 validation rows the hold-out loss of the best configurations is mostly the
luck of the split: nudging the best configuration's hyperparameters by 5% moves it by a sizeable share
of the task's whole range, and "the best configuration" would be a lucky draw rather than a good one.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np

MAX_ROWS = 400
FOLDS = 3
MLP_STEPS = 100
HGB_ITER = 15
SPACES = ("mlp", "hgb")
PARAMS = {
    "mlp": ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "width"),
    "hgb": ("learning_rate", "max_leaf_nodes", "min_samples_leaf", "l2_regularization"),
}


@dataclass(frozen=True)
class HPOTask:
    """One training/validation split of a task (a cross-validation fold)."""

    name: str
    task_type: str
    Xtr: np.ndarray
    ytr: np.ndarray
    Xva: np.ndarray
    yva: np.ndarray
    n_classes: int  # 1 for regression

    @property
    def cap(self) -> float:
        """The loss of a useless model, doubled: every objective value is at most this."""
        return 2.0 * (math.log(self.n_classes) if self.task_type == "classification" else 1.0)


def _specs() -> list[tuple[str, str, dict]]:
    specs = [(n, "bundled", {}) for n in ("iris", "wine", "breast_cancer", "digits", "diabetes")]
    rng = np.random.default_rng(2024)
    for i in range(22):
        specs.append(
            (
                f"clf{i:02d}",
                "classification",
                dict(
                    n_samples=int(rng.choice([150, 250, 400])),
                    n_features=int(rng.integers(4, 40)),
                    n_informative_share=float(rng.uniform(0.2, 1.0)),
                    n_classes=int(rng.choice([2, 2, 3, 4, 6])),
                    class_sep=float(rng.uniform(0.4, 2.0)),
                    flip_y=float(rng.uniform(0.0, 0.15)),
                    seed=i,
                ),
            )
        )
    for i in range(7):
        specs.append(
            (
                f"reg{i:02d}",
                "regression",
                dict(
                    n_samples=int(rng.choice([150, 250, 400])),
                    n_features=int(rng.integers(3, 30)),
                    n_informative_share=float(rng.uniform(0.2, 1.0)),
                    noise=float(rng.uniform(1, 50)),
                    seed=i,
                ),
            )
        )
    for i in range(4):
        specs.append(
            (
                f"friedman{i}",
                "friedman",
                dict(n_samples=int(rng.choice([200, 400])), noise=float(rng.uniform(0.0, 3.0)), seed=i),
            )
        )
    return specs


TASK_NAMES = [name for name, _, _ in _specs()]


def _standardise(fit: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    """``arrays`` shifted and scaled by the mean and standard deviation of ``fit`` (a constant column: 1)."""
    mean, std = fit.mean(0), fit.std(0)
    std = np.where(std > 0, std, 1.0)
    return [(a - mean) / std for a in arrays]


@cache
def load_data(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """A task's rows ``(X, y, task_type)``: at most ``MAX_ROWS``, classes as 0..k-1, numbers standardised."""
    import sklearn.datasets as d

    kind, kw = {n: (k, kw) for n, k, kw in _specs()}[name]
    if kind == "bundled":
        X, y = getattr(d, f"load_{name}")(return_X_y=True)
        task_type = "regression" if name == "diabetes" else "classification"
    elif kind == "classification":
        f = kw["n_features"]
        inf = max(2, int(round(kw["n_informative_share"] * f)))
        while 2**inf < kw["n_classes"] * 2:
            inf += 1
        X, y = d.make_classification(
            n_samples=kw["n_samples"],
            n_features=max(f, inf),
            n_informative=inf,
            n_redundant=0,
            n_classes=kw["n_classes"],
            class_sep=kw["class_sep"],
            flip_y=kw["flip_y"],
            random_state=kw["seed"],
        )
        task_type = "classification"
    elif kind == "regression":
        f = kw["n_features"]
        X, y = d.make_regression(
            n_samples=kw["n_samples"],
            n_features=f,
            n_informative=max(1, int(round(kw["n_informative_share"] * f))),
            noise=kw["noise"],
            random_state=kw["seed"],
        )
        task_type = "regression"
    else:
        X, y = d.make_friedman1(n_samples=kw["n_samples"], noise=kw["noise"], random_state=kw["seed"])
        task_type = "regression"
    rng = np.random.default_rng(0)
    if len(X) > MAX_ROWS:
        keep = rng.choice(len(X), MAX_ROWS, replace=False)
        X, y = X[keep], y[keep]
    [X] = _standardise(X, X)
    [y] = [np.searchsorted(np.unique(y), y)] if task_type == "classification" else _standardise(y, y)
    return X, y, task_type


@cache
def load_folds(name: str) -> tuple[HPOTask, ...]:
    """The task's ``FOLDS`` cross-validation splits, standardised on each split's training rows."""
    from sklearn.model_selection import KFold, StratifiedKFold

    X, y, task_type = load_data(name)
    cv = (StratifiedKFold if task_type == "classification" else KFold)(FOLDS, shuffle=True, random_state=0)
    n_classes = int(y.max()) + 1 if task_type == "classification" else 1
    folds = []
    for tr, va in cv.split(X, y):
        Xtr, Xva = _standardise(X[tr], X[tr], X[va])
        ytr, yva = (y[tr], y[va]) if task_type == "classification" else _standardise(y[tr], y[tr], y[va])
        folds.append(HPOTask(name, task_type, Xtr, ytr, Xva, yva, n_classes))
    return tuple(folds)


def suggest(trial, space: str) -> dict:
    """Define the search space on an Optuna trial."""
    if space == "mlp":
        return {
            "optimizer": trial.suggest_categorical("optimizer", ["sgd", "adam"]),
            "lr": trial.suggest_float("lr", 1e-4, 1.0, log=True),
            "momentum": trial.suggest_float("momentum", 0.0, 0.99),
            "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
            "batch_size": trial.suggest_int("batch_size", 8, 256, log=True),
            "width": trial.suggest_int("width", 8, 256, log=True),
        }
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-2, 1.0, log=True),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 2, 128, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 100, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True),
    }


def _loss(task: HPOTask, out: np.ndarray) -> float:
    if task.task_type == "classification":
        p = np.clip(out, 1e-12, 1.0)
        value = float(-np.log(p[np.arange(len(task.yva)), task.yva]).mean())
    else:
        value = float(((out - task.yva) ** 2).mean())
    return value if math.isfinite(value) else task.cap


def train_mlp(task: HPOTask, p: dict, seed: int = 0) -> float:
    """A one-hidden-layer ReLU network in NumPy: MLP_STEPS updates of SGD with momentum or Adam."""
    rng = np.random.default_rng(seed)
    X, y = task.Xtr, task.ytr
    n, f = X.shape
    k = task.n_classes
    h = p["width"]
    W1 = rng.normal(scale=math.sqrt(2.0 / f), size=(f, h))
    b1 = np.zeros(h)
    W2 = rng.normal(scale=math.sqrt(1.0 / h), size=(h, k))
    b2 = np.zeros(k)
    params = [W1, b1, W2, b2]
    m = [np.zeros_like(q) for q in params]
    v = [np.zeros_like(q) for q in params]
    lr, mom, wd, bs = p["lr"], p["momentum"], p["weight_decay"], min(p["batch_size"], n)
    Y = np.eye(k)[y] if task.task_type == "classification" else y[:, None]
    with np.errstate(all="ignore"):
        for t in range(1, MLP_STEPS + 1):
            idx = rng.choice(n, bs, replace=False)
            xb, yb = X[idx], Y[idx]
            a = xb @ W1 + b1
            z = np.maximum(a, 0)
            out = z @ W2 + b2
            if task.task_type == "classification":
                out = out - out.max(1, keepdims=True)
                e = np.exp(out)
                g = (e / e.sum(1, keepdims=True) - yb) / bs
            else:
                g = 2 * (out - yb) / bs
            gW2, gb2 = z.T @ g, g.sum(0)
            gz = g @ W2.T * (a > 0)
            grads = [xb.T @ gz, gz.sum(0), gW2, gb2]
            for i, (q, gq) in enumerate(zip(params, grads)):
                gq = gq + wd * q
                if p["optimizer"] == "sgd":
                    m[i] = mom * m[i] + gq
                    q -= lr * m[i]
                else:
                    m[i] = mom * m[i] + (1 - mom) * gq
                    v[i] = 0.999 * v[i] + 0.001 * gq * gq
                    q -= lr * (m[i] / (1 - mom**t)) / (np.sqrt(v[i] / (1 - 0.999**t)) + 1e-8)
            if not np.isfinite(params[2]).all():
                return task.cap
        out = np.maximum(task.Xva @ W1 + b1, 0) @ W2 + b2
        if task.task_type == "classification":
            out = out - out.max(1, keepdims=True)
            out = np.exp(out)
            out = out / out.sum(1, keepdims=True)
        else:
            out = out[:, 0]
    return min(_loss(task, out), task.cap)


def train_hgb(task: HPOTask, p: dict, seed: int = 0) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingClassifier if task.task_type == "classification" else HistGradientBoostingRegressor
    model = cls(max_iter=HGB_ITER, early_stopping=False, random_state=seed, **p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(task.Xtr, task.ytr)
        if task.task_type == "classification":
            proba = np.zeros((len(task.yva), task.n_classes))
            proba[:, model.classes_] = model.predict_proba(task.Xva)
            out = proba
        else:
            out = model.predict(task.Xva)
    return min(_loss(task, out), task.cap)


def evaluate(name: str, space: str, params: dict) -> float:
    """The cross-validated loss of a configuration on a task."""
    train = train_mlp if space == "mlp" else train_hgb
    return float(np.mean([train(fold, params) for fold in load_folds(name)]))


def objective(name: str, space: str):
    """The Optuna objective of a task and search space."""

    def run(trial) -> float:
        return evaluate(name, space, suggest(trial, space))

    return run
