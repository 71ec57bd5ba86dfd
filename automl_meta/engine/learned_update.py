"""Learned update rules applied to parameter dictionaries, batched over tasks with vmap.

A rule (:class:`automl_meta.learners.UpdateRule`) updates one tensor; these
helpers apply it to every tensor of a parameter dictionary, for a whole batch of
tasks at once (every tensor with a leading task axis), optionally with other
weights than the rule's own (``weights``, for evolution-strategies perturbations
through :func:`torch.func.functional_call`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.func import functional_call, grad, vmap

from .inner_loop import Data, Params

if TYPE_CHECKING:
    from ..learners.update_rule import UpdateRule

States = dict[str, dict[str, Tensor]]


def _caller(rule: torch.nn.Module, weights: Params | None) -> Callable[..., Any]:
    if weights is None:
        return rule
    return lambda *args: functional_call(rule, weights, args)


def rule_step(
    rule: UpdateRule, params: Params, grads: Params, states: States, step: Tensor, weights: Params | None = None
) -> tuple[Params, States]:
    """One update of every tensor of one task's ``params`` by ``rule`` (``step`` counts from 1)."""
    call = _caller(rule, weights)
    new_params: Params = {}
    new_states: States = {}
    for name in params:
        new_params[name], new_states[name] = call(params[name], grads[name], states[name], step)
    return new_params, new_states


def batched_init_states(rule: UpdateRule, params: Params) -> States:
    """The rule's fresh state for every tensor of every task (``params`` has a leading task axis)."""
    return {name: vmap(rule.init_state)(p) for name, p in params.items()}


def batched_rule_step(
    rule: UpdateRule, params: Params, grads: Params, states: States, step: Tensor, weights: Params | None = None
) -> tuple[Params, States]:
    """:func:`rule_step` for every task of a batch (leading task axis on params, grads and states)."""
    return vmap(lambda p, g, s: rule_step(rule, p, g, s, step, weights))(params, grads, states)


def batched_unroll(
    rule: UpdateRule,
    loss: Callable[[Params, Data], Tensor],
    params: Params,
    states: States,
    data: dict[str, Tensor],
    *,
    first_step: int,
    steps: int,
    weights: Params | None = None,
    grad_data: Callable[[int], dict[str, Tensor]] | None = None,
    loss_every: int = 1,
    scale: Callable[[int], float] | None = None,
) -> tuple[Tensor, Params, States]:
    """Train every task of a batch for ``steps`` steps with ``rule``.

    Gradients of the inner loss are treated as constants (no second derivatives,
    as in Andrychowicz et al. 2016), so meta-gradients flow through the parameter
    and state trajectory and the rule's outputs. With ``grad_data``, step ``t``
    (counted from ``first_step``) takes its gradient on ``grad_data(t)``, for example
    a mini-batch, while the recorded losses stay those on ``data``. With
    ``loss_every`` above 1, the loss on ``data`` is recorded after every
    ``loss_every``-th step (and after the last) only: when ``data`` is much larger
    than the mini-batches, evaluating it at every step is most of the cost. With
    ``scale``, step ``t``'s update is multiplied by ``scale(t)`` (a cool-down, as
    :class:`~automl_meta.optim.LearnedOptimizer` applies it when told the run's length).

    Returns
    -------
    losses : Tensor of shape (ceil(steps / loss_every) + 1, n_tasks)
        Each task's loss before the first step and after every ``loss_every``-th
        and the last step (differentiable with respect to the rule's weights).
    params, states
        Where the tasks are after the last step.
    """
    task_loss = vmap(loss)
    task_grad = vmap(grad(loss))
    losses = []
    for k in range(steps):
        if k % loss_every == 0:
            losses.append(task_loss(params, data))
        on = data if grad_data is None else grad_data(first_step + k)
        g = task_grad({n: p.detach() for n, p in params.items()}, on)
        step = torch.tensor(float(first_step + k), dtype=losses[-1].dtype, device=losses[-1].device)
        new_params, states = batched_rule_step(rule, params, g, states, step, weights)
        factor = 1.0 if scale is None else scale(first_step + k)
        params = new_params if factor == 1.0 else {n: p + factor * (new_params[n] - p) for n, p in params.items()}
    losses.append(task_loss(params, data))
    return torch.stack(losses), params, states
