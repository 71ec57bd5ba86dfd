"""The held-out full-batch training tasks of ``studies/l2o_vs_adam.py``.

Scikit-learn's bundled datasets (iris, wine, breast cancer, digits, diabetes) and two of its generators
(moons, Friedman #1), each trained by two networks wider and deeper than any in meta-training (4 x 64 tanh
and 4 x 128 ReLU). Every task splits its rows 75/25 (stratified for classification); features and
regression targets are standardised on the training split, and the other 25 % gives the validation loss.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

DATASETS = {
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "digits": "classification",
    "diabetes": "regression",
    "moons": "classification",
    "friedman1": "regression",
}
ARCHITECTURES = {"4x64-tanh": ((64, 64, 64, 64), nn.Tanh), "4x128-relu": ((128, 128, 128, 128), nn.ReLU)}


def load_dataset(name: str, seed: int = 0):
    import sklearn.datasets as d

    if name == "moons":
        return d.make_moons(400, noise=0.25, random_state=seed)
    if name == "friedman1":
        return d.make_friedman1(400, noise=1.0, random_state=seed)
    return getattr(d, f"load_{name}")(return_X_y=True)


def make_task(dataset: str, arch: str, seed: int = 0) -> dict:
    from sklearn.model_selection import train_test_split

    kind = DATASETS[dataset]
    X, y = load_dataset(dataset, seed)
    Xtr, Xva, ytr, yva = train_test_split(
        X, y, test_size=0.25, random_state=seed, stratify=y if kind == "classification" else None
    )
    mean, std = Xtr.mean(0), Xtr.std(0)
    std = np.where(std > 1e-8, std, 1.0)  # constant training columns (digits' blank pixels) stay as they are
    Xtr, Xva = (Xtr - mean) / std, (Xva - mean) / std
    if kind == "regression":
        ym, ys = ytr.mean(), ytr.std()
        ytr, yva = (ytr - ym) / ys, (yva - ym) / ys
        to_y = lambda v: torch.tensor(v, dtype=torch.float32)[:, None]  # noqa: E731 - short local helper
        n_out = 1
    else:
        to_y = lambda v: torch.tensor(v, dtype=torch.int64)  # noqa: E731 - short local helper
        n_out = int(len(np.unique(y)))
    return {
        "name": f"{dataset}/{arch}",
        "kind": kind,
        "arch": arch,
        "seed": seed,
        "n_out": n_out,
        "Xtr": torch.tensor(Xtr, dtype=torch.float32),
        "ytr": to_y(ytr),
        "Xva": torch.tensor(Xva, dtype=torch.float32),
        "yva": to_y(yva),
    }


def build_model(task: dict) -> nn.Module:
    hidden, act = ARCHITECTURES[task["arch"]]
    torch.manual_seed(task["seed"])  # every method starts from the same weights
    widths = [task["Xtr"].shape[1], *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), act()]
    return nn.Sequential(*layers, nn.Linear(widths[-1], task["n_out"]))
