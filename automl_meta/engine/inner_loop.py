"""Inner loops as pure functions over parameter dictionaries, batched over tasks with vmap.

``adapt`` takes the meta-parameters (an initialisation and per-parameter
step sizes) and one task's support data and returns the task's fast weights.
``batched_query_losses`` maps adapt-then-score over a whole meta-batch in one
:func:`torch.vmap` call; when the meta-parameters require grad, ordinary
``.backward()`` on the result gives exact meta-gradients (second order unless
``first_order=True``).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor
from torch.func import functional_call, grad, vmap

from .losses import masked_accuracy, task_loss

Params = dict[str, Tensor]
Data = dict[str, Tensor]


def functional_apply(module: torch.nn.Module) -> Callable[[Params, Tensor], Tensor]:
    """``apply(params, x)``: run ``module`` with the given parameters instead of its own."""

    def apply(params: Params, x: Tensor) -> Tensor:
        return functional_call(module, params, (x,))

    return apply


def adapt(
    apply: Callable[[Params, Tensor], Tensor],
    params: Params,
    rates: Params,
    support: Data,
    *,
    steps: int,
    task_type: str,
    names: Iterable[str] | None = None,
    first_order: bool = False,
) -> Params:
    """Gradient steps ``theta <- theta - rate * grad`` on one task's support loss.

    Parameters
    ----------
    apply : callable
        ``apply(params, x) -> predictions`` (see :func:`functional_apply`).
    params : dict of Tensor
        Starting point (the meta-learned initialisation).
    rates : dict of Tensor
        Step size for each adapted parameter: a scalar or a tensor of the parameter's shape.
    support : dict of Tensor
        ``{"x", "y", "mask", "class_mask"}`` of one task.
    steps : int
        Number of gradient steps.
    names : iterable of str, optional
        Parameters to adapt (default: all); the others stay at ``params``.
    first_order : bool
        Treat the inner gradients as constants, so meta-gradients skip second derivatives.

    Returns
    -------
    dict of Tensor
        All parameters after adaptation.
    """
    names = list(params) if names is None else list(names)
    frozen = {k: v for k, v in params.items() if k not in names}

    def support_loss(fast: Params) -> Tensor:
        return task_loss(apply({**frozen, **fast}, support["x"]), support, task_type)

    fast = {k: params[k] for k in names}
    for _ in range(steps):
        g = grad(support_loss)(fast)
        if first_order:
            g = {k: v.detach() for k, v in g.items()}
        fast = {k: fast[k] - rates[k] * g[k] for k in names}
    return {**frozen, **fast}


def batched_adapt(apply, params: Params, rates: Params, support: Data, **kwargs) -> Params:
    """:func:`adapt` for every task of a batch at once; each returned tensor has a leading task axis."""
    return vmap(lambda s: adapt(apply, params, rates, s, **kwargs))(support)


def batched_query_losses(
    apply, params: Params, rates: Params, support: Data, query: Data, *, task_type: str, **kwargs
) -> tuple[Tensor, Tensor]:
    """Adapt on each task's support set, score on its query set.

    Returns
    -------
    losses : Tensor of shape (n_tasks,)
        Query loss of each adapted task (differentiable w.r.t. ``params`` and ``rates``).
    metric : Tensor of shape (n_tasks,)
        Query accuracy for classification, query MSE for regression (no gradient).
    """

    def one(s: Data, q: Data) -> tuple[Tensor, Tensor]:
        fast = adapt(apply, params, rates, s, task_type=task_type, **kwargs)
        pred = apply(fast, q["x"])
        loss = task_loss(pred, q, task_type)
        if task_type == "classification":
            metric = masked_accuracy(pred.detach(), q["y"], q["mask"], q["class_mask"])
        else:
            metric = loss.detach()
        return loss, metric

    return vmap(one)(support, query)
