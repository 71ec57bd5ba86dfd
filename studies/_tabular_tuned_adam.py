"""The ``TunedAdam`` baseline of ``tabular_fewshot.py``: the TabularNet backbone of the default artifact,
trained from a random initialisation by full-batch Adam, its learning rate and weight decay tuned by Optuna's
TPE on a hold-out quarter of the training rows, then refitted on all of them.
"""

from __future__ import annotations

import numpy as np
import torch

import automl_meta as am

ADAM_STEPS = 200


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
