"""The same meta-learning step written with ``higher``: a Python loop over tasks, one patched module each.

An independent reference for the engine's meta-gradients (tests) and its speed (engine_speed study).
"""

from __future__ import annotations

import higher
import torch
from torch import nn

from automl_meta.tasks import TaskBatch


def meta_backward(
    model: nn.Module, batch: TaskBatch, *, steps: int, inner_lr: float, rates: list[torch.Tensor] | None = None
) -> float:
    """Accumulate the second-order MAML (or, with per-parameter ``rates``, Meta-SGD) meta-gradient.

    The meta-loss is the mean over tasks of the query MSE after ``steps`` SGD steps on the support MSE.
    """
    params = list(model.parameters())
    # One parameter group per tensor, so Meta-SGD's per-parameter rates can override each group's lr.
    inner_opt = torch.optim.SGD([{"params": [p]} for p in params], lr=inner_lr)
    override = None if rates is None else {"lr": list(rates)}
    n_tasks, total = len(batch), 0.0
    for t in range(n_tasks):
        xs, ys, xq, yq = batch.x_support[t], batch.y_support[t], batch.x_query[t], batch.y_query[t]
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False, override=override) as (fmodel, diffopt):
            for _ in range(steps):
                diffopt.step(((fmodel(xs) - ys) ** 2).mean())
            query_loss = ((fmodel(xq) - yq) ** 2).mean() / n_tasks
            query_loss.backward()
        total += float(query_loss.detach())
    return total
