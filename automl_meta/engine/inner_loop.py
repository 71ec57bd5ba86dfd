"""Inner loops as pure functions over parameter dictionaries, batched over tasks with vmap.

``adapt`` takes the meta-parameters (an initialisation and per-parameter
step sizes) and one task's support data and returns the task's fast weights.
``batched_query_losses`` maps adapt-then-score over a whole meta-batch in one
:func:`torch.vmap` call; when the meta-parameters require grad, ordinary
``.backward()`` on the result gives exact meta-gradients (second order unless
``first_order=True``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, grad, grad_and_value, vmap

from .losses import masked_accuracy, task_loss

Params = dict[str, Tensor]
Data = dict[str, Tensor]

# Safeguarded steps: the first of a run tries the step scaled by 1, 1/4 and 1/16 (in one batched evaluation:
# no branching under vmap) and keeps the largest that does not raise the support loss, or none; later ones try
# one scale, each task's own: doubled (up to 1) after a step taken, cut to a quarter after one refused. That
# costs a gradient and one more loss evaluation a step, however long the adaptation.
_FIRST_SCALES, _SHRINK, _GROW = (1.0, 0.25, 0.0625), 0.25, 2.0


def functional_apply(module: torch.nn.Module) -> Callable[[Params, Tensor], Tensor]:
    """``apply(params, x)``: run ``module`` with the given parameters instead of its own."""

    def apply(params: Params, x: Tensor) -> Tensor:
        return functional_call(module, params, (x,))

    return apply


def adapt(
    apply: Callable[[Params, Tensor], Tensor],
    params: Params,
    rates: Params,
    support: Data | Sequence[Data],
    *,
    steps: int,
    task_type: str,
    names: Iterable[str] | None = None,
    first_order: bool = False,
    safeguard_after: int | None = None,
    initialize: Callable[[Params, Data], Params] | None = None,
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
    support : dict of Tensor, or a sequence of them
        ``{"x", "y", "mask", "class_mask"}`` of one task; a sequence holds mini-batches of its
        rows, step ``i`` taken on ``support[i % len(support)]`` (``initialize`` sees the first).
    steps : int
        Number of gradient steps.
    names : iterable of str, optional
        Parameters to adapt (default: all); the others stay at ``params``.
    first_order : bool
        Treat the inner gradients as constants, so meta-gradients skip second derivatives.
    safeguard_after : int, optional
        Steps after the first ``safeguard_after`` are safeguarded: they use the rates'
        magnitudes times a scale of each task's own: the first is cut to 1/4, then 1/16, until
        it does not raise the support loss, or skipped; later ones try the last scale doubled
        (up to 1) after a step taken, or cut to 1/4 after one refused. Rates meta-learned for
        a few steps can overshoot when applied for more; this keeps longer adaptation from
        diverging while leaving the meta-trained steps exact.
    initialize : callable, optional
        ``initialize(params, support) -> params``: a task-dependent starting point computed
        from the support set before the first step (for example a head fitted in closed form,
        whose shape follows the task's classes). Differentiable, so it is meta-learned too.

    Returns
    -------
    dict of Tensor
        All parameters after adaptation.
    """
    batches = [support] if isinstance(support, dict) else list(support)
    if initialize is not None:
        params = initialize(params, batches[0])
    names = list(params) if names is None else list(names)
    frozen = {k: v for k, v in params.items() if k not in names}

    def loss_on(data: Data) -> Callable[[Params], Tensor]:
        return lambda fast: task_loss(apply({**frozen, **fast}, data["x"]), data, task_type)

    fast = {k: params[k] for k in names}
    scale: Tensor | None = None
    for i in range(steps):
        support_loss = loss_on(batches[i % len(batches)])
        if safeguard_after is not None and i >= safeguard_after:
            fast, scale = _safeguarded_step(support_loss, fast, rates, scale)
            continue
        g = grad(support_loss)(fast)
        if first_order:
            g = {k: v.detach() for k, v in g.items()}
        fast = {k: fast[k] - rates[k] * g[k] for k in names}
    return {**frozen, **fast}


def _safeguarded_step(
    support_loss: Callable[[Params], Tensor], fast: Params, rates: Params, scale: Tensor | None
) -> tuple[Params, Tensor]:
    """A step that does not raise the loss, at ``scale`` (None: the first, searched) times the rates; the next scale."""
    g, current = grad_and_value(support_loss)(fast)
    scales = current.new_tensor(_FIRST_SCALES) if scale is None else scale[None]
    # |rate|: a meta-learned rate may be negative (useful in the trained steps); a safeguarded step must descend.
    candidates = {k: fast[k] - scales.reshape(-1, *([1] * fast[k].dim())) * (rates[k].abs() * g[k]) for k in fast}
    losses = vmap(support_loss)(candidates)
    ok = (losses <= current) & torch.isfinite(losses)
    first_ok = ok & (torch.cumsum(ok.to(torch.int64), 0) == 1)
    # torch.where, not a weighted sum: a diverged candidate may hold inf/NaN.
    chosen = fast
    for j in reversed(range(len(scales))):
        chosen = {k: torch.where(first_ok[j], candidates[k][j], chosen[k]) for k in fast}
    taken = (first_ok * scales).sum()
    return chosen, torch.where(ok.any(), (taken * _GROW).clamp(max=1.0), scales[-1] * _SHRINK)


def batched_adapt(
    apply: Callable[[Params, Tensor], Tensor],
    params: Params,
    rates: Params,
    support: Data | Sequence[Data],
    *,
    params_batched: bool = False,
    **kwargs: Any,
) -> Params:
    """:func:`adapt` for every task of a batch at once; each returned tensor has a leading task axis.

    With ``params_batched``, ``params`` already has a task axis (one starting point per task, for
    example to continue adapting earlier fast weights).
    """
    return vmap(lambda p, s: adapt(apply, p, rates, s, **kwargs), in_dims=(0 if params_batched else None, 0))(
        params, support
    )


def batched_query_losses(
    apply: Callable[[Params, Tensor], Tensor],
    params: Params,
    rates: Params,
    support: Data,
    query: Data,
    *,
    task_type: str,
    **kwargs: Any,
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
            logits = pred.detach()[..., : q["class_mask"].shape[-1]]
            metric = masked_accuracy(logits, q["y"], q["mask"], q["class_mask"])
        else:
            metric = loss.detach()
        return loss, metric

    return vmap(one)(support, query)
