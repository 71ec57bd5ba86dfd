"""Dataset meta-features: a fixed-length numeric description of a task, used to find similar past tasks.

:func:`describe` returns a dict whose keys are always the same (:data:`NAMES`, in that order) and
whose values are finite floats, so that two descriptions can be compared feature by feature. Four groups:

``simple``
    size and shape: log rows, log features, features per row, number of classes, share of discrete
    features, whether the task is a classification task.
``statistical``
    distribution of the (standardised) features: mean and spread of skewness and kurtosis, mean
    absolute correlation between features, variance share of the first principal component and the
    share of components needed for 90% of the variance, mean absolute correlation with the target
    (regression; 0 for classification), target skewness (regression) or class imbalance
    (classification: minority-class share).
``info``
    information theory on features discretised into 10 equal-frequency bins: normalised class (or binned
    target) entropy, mean normalised feature entropy, mean and max mutual information between a feature
    and the target, and the noise-to-signal ratio (feature entropy not explained by mutual information).
``landmark``
    3-fold cross-validated scores of tiny models: a decision stump, 1-nearest-neighbour and naive Bayes
    (classification, balanced accuracy) or a linear model (regression, R^2 clipped to [-1, 1]).

Large tasks are subsampled (at most 2,000 rows for the statistics and 1,000 rows for the
landmarkers; at most 100 features for correlations), with a fixed seed, so a description takes well
under a second for 10,000 x 100 and the same data always gives the same description.

Examples
--------
>>> from sklearn.datasets import load_iris
>>> from automl_meta.metafeatures import describe, NAMES
>>> mf = describe(*load_iris(return_X_y=True))
>>> list(mf) == NAMES
True
>>> mf["simple.n_classes"], round(mf["landmark.one_nn"], 2)
(3.0, 0.93)
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .exceptions import TaskError

__all__ = ["describe", "fingerprint", "as_vector", "NAMES"]

NAMES: list[str] = [
    "simple.log_rows",
    "simple.log_features",
    "simple.features_per_row",
    "simple.n_classes",
    "simple.discrete_share",
    "simple.is_classification",
    "statistical.skew_mean",
    "statistical.skew_std",
    "statistical.kurtosis_mean",
    "statistical.kurtosis_std",
    "statistical.abs_corr_mean",
    "statistical.pca_first_share",
    "statistical.pca_90_share",
    "statistical.target_corr_mean",
    "statistical.target_shape",
    "info.target_entropy",
    "info.feature_entropy_mean",
    "info.mutual_info_mean",
    "info.mutual_info_max",
    "info.noise_signal",
    "landmark.stump",
    "landmark.one_nn",
    "landmark.naive_bayes_or_linear",
]

_MAX_ROWS_STATS = 2000
_MAX_ROWS_LANDMARK = 1000
_MAX_FEATURES_CORR = 100
_BINS = 10


def fingerprint(X: ArrayLike, y: ArrayLike) -> str:
    """A content hash of a task's data (sha256 over shapes and float64 values, or of a table's columns), stable.

    Examples
    --------
    >>> import numpy as np
    >>> from automl_meta.metafeatures import fingerprint
    >>> fingerprint(np.eye(3), [0, 1, 1]) == fingerprint(np.eye(3).tolist(), np.array([0, 1, 1]))
    True
    """
    try:
        X = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
    except (TypeError, ValueError):  # a table with text or category columns: the corpus's table digest
        from .corpus._preprocess import table_fingerprint

        return table_fingerprint(X, y)
    y = np.asarray(y)
    y = y.astype(np.float64) if y.dtype.kind in "biuf" else np.unique(y, return_inverse=True)[1].astype(np.float64)
    h = hashlib.sha256()
    h.update(repr((X.shape, y.shape)).encode())
    h.update(X.tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def _check(X: ArrayLike, y: ArrayLike, task_type: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    from .corpus._preprocess import encode_table  # categories and missing values, as a user's Pipeline would

    X = encode_table(X)
    y = np.asarray(y)
    if X.ndim != 2:
        raise TaskError(f"Cannot describe the task: X must be 2-D (n_samples, n_features), got shape {X.shape}.")
    if y.ndim != 1 or len(y) != len(X):
        raise TaskError(
            f"Cannot describe the task: y must be 1-D with one value per row of X "
            f"(X has {len(X)} rows, y has shape {y.shape})."
        )
    if len(X) < 6 or X.shape[1] == 0:
        raise TaskError(
            f"Cannot describe the task: it has {len(X)} rows and {X.shape[1]} features; meta-features "
            "need at least 6 rows and one feature."
        )
    if not np.all(np.isfinite(X)):
        raise TaskError("Cannot describe the task: X contains infinite values; clip or drop them first.")
    if y.dtype.kind in "fc" and not np.all(np.isfinite(y)):
        raise TaskError("Cannot describe the task: y contains NaN or infinite values; drop those rows first.")
    if np.all(X.max(0) == X.min(0)):
        raise TaskError(
            "Cannot describe the task: every feature column is constant, so nothing about the task "
            "can be learned from X."
        )
    if task_type is None:
        # Floats with many distinct values are regression targets even when they are whole numbers
        # (scikit-learn's diabetes target); everything else follows scikit-learn's type_of_target.
        if y.dtype.kind == "f" and (np.any(y != np.round(y)) or len(np.unique(y)) > 20):
            task_type = "regression"
        else:
            from .tasks.datasets import _infer_task_type

            task_type = _infer_task_type(y)
    if task_type not in ("classification", "regression"):
        raise TaskError(f"task_type must be 'classification' or 'regression', got {task_type!r}.")
    if task_type == "classification":
        y = np.unique(y, return_inverse=True)[1]
        if y.max() == 0:
            raise TaskError("Cannot describe the task: y has a single class.")
    else:
        y = y.astype(np.float64)
        if y.max() == y.min():
            raise TaskError("Cannot describe the task: the regression target is constant.")
    return X, y, task_type


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _discretise(X: np.ndarray) -> np.ndarray:
    """Equal-frequency bin codes 0.._BINS-1 per column (ties share a bin)."""
    qs = np.quantile(X, np.linspace(0, 1, _BINS + 1)[1:-1], axis=0)  # (_BINS-1, f)
    codes = np.zeros(X.shape, dtype=np.int64)
    for j in range(X.shape[1]):
        codes[:, j] = np.searchsorted(np.unique(qs[:, j]), X[:, j], side="right")
    return codes


def _info(Xd: np.ndarray, yd: np.ndarray, n_y: int) -> dict[str, float]:
    n, f = Xd.shape
    h_y = _entropy(np.bincount(yd, minlength=n_y).astype(float))
    # Joint counts of (feature bin, target value) for every feature at once.
    joint = np.zeros((f, _BINS, n_y))
    np.add.at(joint, (np.repeat(np.arange(f), n), Xd.T.ravel(), np.tile(yd, f)), 1.0)
    px = joint.sum(2) / n
    py = joint.sum(1) / n
    pxy = joint / n
    with np.errstate(divide="ignore", invalid="ignore"):
        h_x = -np.where(px > 0, px * np.log(px), 0.0).sum(1)
        mi = np.where(pxy > 0, pxy * np.log(pxy / (px[:, :, None] * py[:, None, :])), 0.0).sum((1, 2))
    mi = np.maximum(mi, 0.0)
    mi_mean = float(mi.mean())
    return {
        "info.target_entropy": h_y / np.log(max(n_y, 2)),
        "info.feature_entropy_mean": float(h_x.mean() / np.log(_BINS)),
        "info.mutual_info_mean": mi_mean / max(h_y, 1e-12),
        "info.mutual_info_max": float(mi.max()) / max(h_y, 1e-12),
        "info.noise_signal": float(np.log1p((h_x.mean() - mi_mean) / max(mi_mean, 1e-6))),
    }


def _landmarks(X: np.ndarray, y: np.ndarray, task_type: str, rng: np.random.Generator) -> dict[str, float]:
    from sklearn.model_selection import KFold, StratifiedKFold

    if task_type == "classification" and np.bincount(y).min() >= 3:
        folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    else:
        folds = list(KFold(3, shuffle=True, random_state=0).split(X))
    scores: dict[str, list[float]] = {"stump": [], "one_nn": [], "third": []}
    for tr, te in folds:
        Xtr, Xte, ytr, yte = X[tr], X[te], y[tr], y[te]
        # 1-NN on standardised features: squared distances via the dot-product identity.
        d = (Xte**2).sum(1)[:, None] - 2 * Xte @ Xtr.T + (Xtr**2).sum(1)[None, :]
        nn = ytr[d.argmin(1)]
        stump = _stump_predict(Xtr, ytr, Xte, task_type)
        if task_type == "classification":
            scores["one_nn"].append(_balanced_accuracy(yte, nn))
            scores["stump"].append(_balanced_accuracy(yte, stump))
            scores["third"].append(_balanced_accuracy(yte, _naive_bayes_predict(Xtr, ytr, Xte)))
        else:
            scores["one_nn"].append(_r2(yte, nn))
            scores["stump"].append(_r2(yte, stump))
            scores["third"].append(_r2(yte, _ridge_predict(Xtr, ytr, Xte)))
    return {
        "landmark.stump": float(np.mean(scores["stump"])),
        "landmark.one_nn": float(np.mean(scores["one_nn"])),
        "landmark.naive_bayes_or_linear": float(np.mean(scores["third"])),
    }


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    classes = np.unique(y)
    return float(np.mean([(pred[y == c] == c).mean() for c in classes]))


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss = ((y - y.mean()) ** 2).sum()
    r2 = 1.0 - ((y - pred) ** 2).sum() / ss if ss > 0 else 0.0
    return float(np.clip(r2, -1.0, 1.0))


def _stump_predict(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, task_type: str) -> np.ndarray:
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    model = (
        DecisionTreeClassifier(max_depth=1, random_state=0)
        if task_type == "classification"
        else DecisionTreeRegressor(max_depth=1, random_state=0)
    )
    return model.fit(Xtr, ytr).predict(Xte)


def _naive_bayes_predict(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray) -> np.ndarray:
    classes = np.unique(ytr)
    means = np.stack([Xtr[ytr == c].mean(0) for c in classes])
    var = np.stack([Xtr[ytr == c].var(0) for c in classes]) + 1e-9 + 1e-9 * Xtr.var(0).max()
    prior = np.log(np.array([(ytr == c).mean() for c in classes]))
    ll = -0.5 * (np.log(var)[None] + (Xte[:, None, :] - means[None]) ** 2 / var[None]).sum(2) + prior[None]
    return classes[ll.argmax(1)]


def _ridge_predict(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray) -> np.ndarray:
    A = np.c_[Xtr, np.ones(len(Xtr))]
    reg = np.eye(A.shape[1]) * 1e-3
    reg[-1, -1] = 0.0
    w = np.linalg.solve(A.T @ A + reg * len(A), A.T @ ytr)
    return np.c_[Xte, np.ones(len(Xte))] @ w


def _moments(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skewness and excess kurtosis per standardised column (0 for constant columns)."""
    return (Z**3).mean(0), (Z**4).mean(0) - 3.0


def _rows(y: np.ndarray, classification: bool, limit: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` row indices, sorted; a classification sample keeps every class present."""
    n = len(y)
    if n <= limit:
        return np.arange(n)
    if classification:
        first = np.unique(y, return_index=True)[1]
        rest = rng.choice(np.setdiff1d(np.arange(n), first), limit - len(first), replace=False)
        return np.sort(np.r_[first, rest])
    return np.sort(rng.choice(n, limit, replace=False))


def _simple(shape: tuple[int, int], Xs: np.ndarray, n_classes: int, classification: bool) -> dict[str, float]:
    n, f = shape
    discrete = np.array([len(np.unique(Xs[:, j])) <= 10 for j in range(f)])
    return {
        "simple.log_rows": float(np.log(n)),
        "simple.log_features": float(np.log(f)),
        "simple.features_per_row": float(np.log1p(f / n)),
        "simple.n_classes": float(n_classes),
        "simple.discrete_share": float(discrete.mean()),
        "simple.is_classification": float(classification),
    }


def _statistical(Zl: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    """Moments, correlations and principal components of the standardised live features ``Zl``."""
    out: dict[str, float] = {}
    skew, kurt = _moments(Zl)
    skew, kurt = np.clip(skew, -50, 50), np.log1p(np.clip(kurt + 3.0, 0, 1e4))
    out["statistical.skew_mean"] = float(np.abs(skew).mean())
    out["statistical.skew_std"] = float(skew.std())
    out["statistical.kurtosis_mean"] = float(kurt.mean())
    out["statistical.kurtosis_std"] = float(kurt.std())
    if Zl.shape[1] > _MAX_FEATURES_CORR:
        Zc = Zl[:, np.sort(rng.choice(Zl.shape[1], _MAX_FEATURES_CORR, replace=False))]
    else:
        Zc = Zl
    corr = (Zc.T @ Zc) / len(Zc)
    k = corr.shape[0]
    out["statistical.abs_corr_mean"] = (
        float((np.abs(corr).sum() - np.trace(np.abs(corr))) / (k * (k - 1))) if k > 1 else 0.0
    )
    eig = np.clip(np.linalg.eigvalsh(corr)[::-1], 0, None)
    share = np.cumsum(eig) / eig.sum()
    out["statistical.pca_first_share"] = float(share[0])
    out["statistical.pca_90_share"] = float((np.searchsorted(share, 0.9) + 1) / k)
    return out


def _target(Xs: np.ndarray, ys: np.ndarray, Zl: np.ndarray, n_classes: int, classification: bool) -> dict[str, float]:
    """How the target is distributed and how much the (discretised) features tell about it."""
    out: dict[str, float] = {}
    if classification:
        counts = np.bincount(ys, minlength=n_classes).astype(float)
        out["statistical.target_corr_mean"] = 0.0
        out["statistical.target_shape"] = float(counts[counts > 0].min() / counts.sum() * n_classes)
        yd, n_y = ys, n_classes
    else:
        yz = (ys - ys.mean()) / ys.std() if ys.std() > 0 else np.zeros_like(ys)
        out["statistical.target_corr_mean"] = float(np.abs(Zl.T @ yz / len(yz)).mean())
        out["statistical.target_shape"] = float(np.clip((yz**3).mean(), -50, 50))
        yd, n_y = _discretise(ys[:, None])[:, 0], _BINS
    out.update(_info(_discretise(Xs), yd, n_y))
    return out


def describe(X: ArrayLike, y: ArrayLike, task_type: str | None = None) -> dict[str, float]:
    """Compute the meta-features of a task.

    Parameters
    ----------
    X : array-like or pandas.DataFrame of shape (n_samples, n_features)
        Features. A table with categorical or text columns or missing values is first encoded the way
        :func:`automl_meta.corpus.make_preprocessor` does (imputation, one-hot encoding).
    y : array-like of shape (n_samples,)
        Class labels or regression targets.
    task_type : {"classification", "regression"}, optional
        Inferred from ``y`` when omitted: floats with fractions or more than 20 distinct values mean
        regression, integer or string labels classification.

    Returns
    -------
    dict of str to float
        One finite value per name in :data:`NAMES`, in that order.

    Raises
    ------
    TaskError
        When the task cannot be described: fewer than 6 rows, no feature, only constant features,
        infinite values, a single class or a constant target.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from automl_meta.metafeatures import describe
    >>> X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    >>> mf = describe(X, y)
    >>> mf["simple.is_classification"], mf["landmark.naive_bayes_or_linear"] > 0.99
    (0.0, True)
    """
    X, y, task_type = _check(X, y, task_type)
    rng = np.random.default_rng(0)  # one stream, drawn in a fixed order: the same task, the same description
    classification = task_type == "classification"
    n_classes = int(y.max()) + 1 if classification else 0
    idx = _rows(y, classification, _MAX_ROWS_STATS, rng)
    Xs, ys = X[idx], y[idx]
    std = Xs.std(0)
    live = std > 0
    Z = np.zeros_like(Xs)
    Z[:, live] = (Xs[:, live] - Xs[:, live].mean(0)) / std[live]
    out = _simple(X.shape, Xs, n_classes, classification)
    out.update(_statistical(Z[:, live], rng))
    out.update(_target(Xs, ys, Z[:, live], n_classes, classification))

    idx = _rows(y, classification, _MAX_ROWS_LANDMARK, rng)
    Zland = (X[idx][:, live] - Xs[:, live].mean(0)) / std[live]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out.update(_landmarks(Zland, y[idx], task_type, rng))

    result = {name: float(out[name]) for name in NAMES}
    bad = [k for k, v in result.items() if not np.isfinite(v)]
    if bad:  # pragma: no cover - every feature above is bounded; this guards future edits
        raise TaskError(f"Cannot describe the task: meta-features {bad} are not finite.")
    return result


def as_vector(metafeatures: Mapping[str, Any]) -> np.ndarray:
    """The values of a description in :data:`NAMES` order (missing names raise a clear error)."""
    missing = [k for k in NAMES if k not in metafeatures]
    if missing:
        raise TaskError(f"Meta-features are missing {missing}; compute them with automl_meta.metafeatures.describe.")
    return np.array([float(metafeatures[k]) for k in NAMES])
