"""Implicit meta-gradients (iMAML, Rajeswaran et al., 2019), batched over tasks with vmap.

Each task adapts by gradient descent on its *proximal* support objective

    L_support(phi) + lam / 2 * ||phi - theta||^2,

whose minimiser ``phi*`` depends on the anchor ``theta`` through
``d phi* / d theta = (I + H / lam)^-1``, with ``H`` the Hessian of the
un-regularised support loss at ``phi*`` (implicit function theorem). The
meta-gradient of the query loss is therefore ``v = (I + H / lam)^-1 g`` with
``g`` the query gradient at ``phi*``: it needs ``phi*`` only, never the path
that reached it. The inner loop runs without building a graph, so memory does
not grow with the number of inner steps; ``v`` comes from conjugate gradient on
Hessian-vector products: the support gradient is linearised once at ``phi*``
(:func:`torch.func.vjp` of :func:`torch.func.grad`) and each CG step is one
vector-Jacobian product with it (``H`` is symmetric), about four times faster here
than recomputing a forward-over-reverse :func:`torch.func.jvp` at every step.

Every function here scores or adapts one task; the ``batched_`` ones map it
over a task axis with :func:`torch.vmap`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor
from torch.func import grad, vjp, vmap

from .inner_loop import Data, Params, _safeguarded_step
from .losses import masked_accuracy, task_loss

Apply = Callable[[Params, Tensor], Tensor]


def _dot(a: Params, b: Params) -> Tensor:
    return cast(Tensor, sum((a[k] * b[k]).sum() for k in a))  # a is never empty: not the int 0


def proximal_objective(
    apply: Apply, anchor: Params, support: Data, *, lam: float, task_type: str
) -> Callable[[Params], Tensor]:
    """``phi -> L_support(phi) + lam / 2 * ||phi - anchor||^2`` for one task."""

    def objective(fast: Params) -> Tensor:
        prox = sum(((fast[k] - anchor[k]) ** 2).sum() for k in anchor)
        return task_loss(apply(fast, support["x"]), support, task_type) + 0.5 * lam * prox

    return objective


def proximal_adapt(
    apply: Apply,
    anchor: Params,
    rates: Params,
    support: Data,
    *,
    steps: int,
    lam: float,
    task_type: str,
    start: Params | None = None,
    safeguard_after: int | None = None,
    curvature_cap: bool = False,
) -> Params:
    """Gradient descent on one task's proximal objective, from ``start`` (default: ``anchor``).

    Parameters
    ----------
    apply : callable
        ``apply(params, x) -> predictions`` (see :func:`~automl_meta.engine.functional_apply`).
    anchor : dict of Tensor
        ``theta``, the centre of the proximal term (the meta-learned initialisation).
    rates : dict of Tensor
        Step size of each parameter (a scalar or a tensor of the parameter's shape).
    support : dict of Tensor
        ``{"x", "y", "mask", "class_mask"}`` of one task.
    steps : int
        Gradient steps; ``phi <- phi - rate * (grad L_support(phi) + lam * (phi - anchor))``.
    lam : float
        Strength of the proximal term.
    start : dict of Tensor, optional
        Where to start (to continue an earlier adaptation); the anchor stays ``anchor``.
    safeguard_after : int, optional
        Steps after the first ``safeguard_after`` are not taken where they would raise the
        proximal objective, and then tried at a quarter of the size (see :func:`~automl_meta.engine.adapt`).
    curvature_cap : bool, default=False
        Cap the step sizes at ``1 / (lam + h)``, ``h`` the support loss's largest curvature at the
        start (see :func:`capped_rates`), so the loop converges however sharp the task is.

    Returns
    -------
    dict of Tensor
        The adapted parameters. Differentiable through the steps when called under autograd
        (the unrolled meta-gradient); :func:`implicit_meta_gradient` never does.
    """
    objective = proximal_objective(apply, anchor, support, lam=lam, task_type=task_type)
    fast = dict(anchor if start is None else start)
    if curvature_cap:
        rates = capped_rates(lambda f: task_loss(apply(f, support["x"]), support, task_type), fast, rates, lam=lam)
    scale = None
    for i in range(steps):
        if safeguard_after is not None and i >= safeguard_after:
            fast, scale = _safeguarded_step(objective, fast, rates, scale)
            continue
        g = grad(objective)(fast)
        fast = {k: fast[k] - rates[k] * g[k] for k in fast}
    return fast


def capped_rates(
    support_loss: Callable[[Params], Tensor], fast: Params, rates: Params, *, lam: float, iterations: int = 10
) -> Params:
    """``rates`` scaled down, where needed, so that the largest step is ``1 / (lam + h)``.

    ``h`` is the largest curvature of ``support_loss`` at ``fast``, estimated by ``iterations``
    steps of power iteration on Hessian-vector products. Gradient descent on the proximal
    objective with a step above ``2 / (lam + h)`` diverges along the sharpest direction; with a
    fixed step, an initialisation that meta-training sharpens (it pays, as the implicit gradient
    assumes the inner problem solved) ends with an inner loop that cannot move, and the implicit
    gradient, which damps exactly those sharp directions, no longer sees the loss grow there.
    A step of ``1 / (lam + h)`` solves the sharpest direction of a quadratic in one step.
    The scale is a constant: it is not differentiated.

    Examples
    --------
    >>> import torch
    >>> loss = lambda p: 0.5 * (torch.tensor([99.0, 1.0]) * p["w"] ** 2).sum()  # curvatures 99 and 1
    >>> rates = capped_rates(loss, {"w": torch.ones(2)}, {"w": torch.tensor(0.5)}, lam=1.0)
    >>> round(float(rates["w"]), 4)  # 1 / (1 + 99)
    0.01
    """
    hvp = vjp(grad(support_loss), fast)[1]
    p = {k: torch.ones_like(v) for k, v in fast.items()}
    first = next(iter(fast.values()))
    curvature = torch.zeros((), dtype=first.dtype, device=first.device)
    for _ in range(iterations):
        q = hvp(p)[0]
        curvature = _dot(p, q) / _dot(p, p)
        norm = torch.sqrt(_dot(q, q)).clamp_min(torch.finfo(curvature.dtype).tiny)
        p = {k: v / norm for k, v in q.items()}
    largest = torch.stack([r.detach().abs().max() for r in rates.values()]).max()
    scale = (1.0 / (largest * (lam + curvature.detach().clamp_min(0.0)))).clamp(max=1.0)
    return {k: r * scale for k, r in rates.items()}


def score_query(apply: Apply, fast: Params, query: Data, task_type: str) -> tuple[Tensor, Tensor]:
    """One task's query loss (differentiable) and metric: accuracy (classification) or MSE (regression)."""
    pred = apply(fast, query["x"])
    loss = task_loss(pred, query, task_type)
    if task_type == "classification":
        logits = pred.detach()[..., : query["class_mask"].shape[-1]]
        return loss, masked_accuracy(logits, query["y"], query["mask"], query["class_mask"])
    return loss, loss.detach()


def conjugate_gradient(matvec: Callable[[Params], Params], b: Params, *, steps: int) -> Params:
    """Approximately solve ``A x = b`` for a symmetric ``A`` given as ``matvec``, from ``x = 0``.

    The iteration is vmap-safe: no data-dependent branches. A task whose residual
    vanishes, or whose search direction meets non-positive curvature (``A`` not
    positive definite there), stops where it is, keeping the solution built so far,
    while the other tasks of the batch go on.

    Examples
    --------
    >>> import torch
    >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> x = conjugate_gradient(lambda p: {"w": A @ p["w"]}, {"w": torch.tensor([1.0, 2.0], dtype=A.dtype)},
    ...                        steps=2)
    >>> torch.allclose(A @ x["w"], torch.tensor([1.0, 2.0], dtype=A.dtype))
    True
    """
    x = {k: torch.zeros_like(v) for k, v in b.items()}
    r, p = dict(b), dict(b)
    rs = _dot(r, r)
    active = torch.ones_like(rs, dtype=torch.bool)
    for _ in range(steps):
        ap = matvec(p)
        pap = _dot(p, ap)
        active = active & (pap > 0) & torch.isfinite(pap)
        # where() twice: the untaken branch must not divide by zero either (NaN gradients, warnings).
        alpha = torch.where(active, rs / torch.where(active, pap, torch.ones_like(pap)), torch.zeros_like(pap))
        x = {k: x[k] + alpha * p[k] for k in x}
        r = {k: r[k] - alpha * ap[k] for k in r}
        rs_new = _dot(r, r)
        beta = torch.where(active, rs_new / torch.where(active, rs, torch.ones_like(rs)), torch.zeros_like(rs))
        p = {k: r[k] + beta * p[k] for k in p}
        rs = rs_new
    return x


def implicit_meta_gradient(
    apply: Apply,
    fast: Params,
    support: Data,
    query: Data,
    *,
    lam: float,
    cg_steps: int,
    cg_damping: float,
    task_type: str,
    first_order: bool = False,
) -> tuple[Params, Tensor, Tensor]:
    """One task's implicit meta-gradient at its adapted parameters ``fast``.

    Solves ``((1 + cg_damping) I + H / lam) v = g`` by ``cg_steps`` steps of conjugate
    gradient, where ``g`` is the query-loss gradient at ``fast`` and ``H`` the Hessian of
    the (un-regularised) support loss there. ``first_order=True`` returns ``v = g``.

    Returns
    -------
    v : dict of Tensor
        The meta-gradient with respect to the anchor of the proximal term.
    loss : Tensor
        The query loss at ``fast``.
    metric : Tensor
        Query accuracy for classification, query MSE for regression.
    """

    def query_loss(f: Params) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        loss, metric = score_query(apply, f, query, task_type)
        return loss, (loss.detach(), metric)

    g, (loss, metric) = grad(query_loss, has_aux=True)(fast)
    if first_order:
        return g, loss, metric
    support_grad = grad(lambda f: task_loss(apply(f, support["x"]), support, task_type))
    hessian_vjp = vjp(support_grad, fast)[1]  # linearised once; H p = p^T H for symmetric H

    def matvec(p: Params) -> Params:
        hp = hessian_vjp(p)[0]
        return {k: (1.0 + cg_damping) * p[k] + hp[k] / lam for k in p}

    return conjugate_gradient(matvec, g, steps=cg_steps), loss, metric


def batched_anchors(
    params: Params, support: Data, initialize: Callable[[Params, Data], Params] | None = None
) -> Params:
    """Each task's anchor (``params``, or ``initialize(params, support)``) with a leading task axis.

    Differentiable: meta-gradients with respect to the anchors flow back to ``params``
    through ``.backward(v)``.
    """
    n_tasks = next(iter(support.values())).shape[0]
    if initialize is None:
        return {k: v.unsqueeze(0).expand(n_tasks, *v.shape) for k, v in params.items()}
    return vmap(initialize, in_dims=(None, 0))(params, support)


def batched_proximal_adapt(
    apply: Apply, anchors: Params, rates: Params, support: Data, *, start: Params | None = None, **kwargs: Any
) -> Params:
    """:func:`proximal_adapt` for every task; ``anchors`` (and ``start``) carry a leading task axis."""
    if start is None:
        return vmap(lambda a, s: proximal_adapt(apply, a, rates, s, **kwargs))(anchors, support)
    return vmap(lambda a, s, x0: proximal_adapt(apply, a, rates, s, start=x0, **kwargs))(anchors, support, start)


def batched_implicit_meta_gradients(
    apply: Apply,
    anchors: Params,
    rates: Params,
    support: Data,
    query: Data,
    *,
    steps: int,
    lam: float,
    cg_steps: int,
    cg_damping: float,
    task_type: str,
    first_order: bool = False,
    safeguard_after: int | None = None,
    curvature_cap: bool = False,
) -> tuple[Params, Tensor, Tensor]:
    """Adapt every task on its proximal objective, then compute its implicit meta-gradient.

    Runs under :func:`torch.no_grad`: nothing is recorded across inner or CG steps, so
    memory is the same for 1 or 1,000 inner steps. ``safeguard_after`` is passed to
    :func:`proximal_adapt`, like ``curvature_cap``: the inner loop is not differentiated, so
    safeguarded or capped steps cost the meta-gradient nothing in exactness.

    Returns
    -------
    v : dict of Tensor
        Per-task meta-gradients with respect to ``anchors`` (leading task axis).
    losses, metric : Tensor of shape (n_tasks,)
        Query loss and metric of each adapted task.

    Examples
    --------
    >>> import torch, automl_meta as am
    >>> from automl_meta.engine import functional_apply
    >>> model = am.models.MLP([8], in_features=1, out_features=1)
    >>> batch = am.tasks.Sinusoid(shots=5).sample(4, rng=0)
    >>> params = {k: p.detach() for k, p in model.named_parameters()}
    >>> v, losses, _ = batched_implicit_meta_gradients(
    ...     functional_apply(model), batched_anchors(params, batch.support()),
    ...     {k: torch.tensor(0.05) for k in params}, batch.support(), batch.query(),
    ...     steps=10, lam=1.0, cg_steps=5, cg_damping=0.0, task_type="regression")
    >>> v["layers.0.weight"].shape, losses.shape
    (torch.Size([4, 8, 1]), torch.Size([4]))
    """
    anchors = {k: a.detach() for k, a in anchors.items()}
    with torch.no_grad():
        fast = batched_proximal_adapt(
            apply,
            anchors,
            rates,
            support,
            steps=steps,
            lam=lam,
            task_type=task_type,
            safeguard_after=safeguard_after,
            curvature_cap=curvature_cap,
        )
        return vmap(
            lambda f, s, q: implicit_meta_gradient(
                apply,
                f,
                s,
                q,
                lam=lam,
                cg_steps=cg_steps,
                cg_damping=cg_damping,
                task_type=task_type,
                first_order=first_order,
            )
        )(fast, support, query)
