"""The :class:`~automl_meta.learners.HyperController`'s step for many tensors at once.

Per-tensor statistics come from a few foreach reductions, a dot product per tensor and one transfer to
the host, where the controller's features are plain arithmetic on a handful of numbers per tensor (small
tensor operations cost more in dispatch than in arithmetic); the updates are ``torch._foreach_*``
operations with one scalar per tensor, given as 0-dim tensors where a Python number would be converted
on every call.
"""

from __future__ import annotations

import functools
import math
from typing import Any, cast

import torch
from torch import Tensor

from .update_rule import TIMESCALES, State

ADAM_BETA2 = 0.999
EPS = 1e-8
# Below this beta**step, a bias-corrected moment weight is taken as 1 - beta (a relative difference under it),
# so that the per-tensor constants of long runs stop changing.
SETTLED = 1e-12


def features(
    params: list[Tensor], grads: list[Tensor], states: list[State], steps: list[float], grad_norms: list[Tensor] | None
) -> tuple[Tensor, Tensor]:
    """Rows of the controller's features (as ``HyperController._features`` makes them for one tensor),
    and each tensor's new running average of its log gradient size."""
    k = len(params)
    m = [s["m"] for s in states]
    g_norms = grad_norms if grad_norms is not None else list(torch._foreach_norm(grads))
    kept = [s[key] for key in ("log_g_avg", "u_lr") for s in states]
    # One dot product per tensor: about half the time of a foreach reduction of unit vectors on the CPU,
    # and exact to rounding.
    dots = [torch.dot(g.reshape(-1), mt.reshape(-1)) for g, mt in zip(grads, m)]
    host = torch.stack([*g_norms, *torch._foreach_norm(m + params), *kept, *dots]).tolist()
    gn, mn, pn, avg, u_lr, dot = (host[i * k : (i + 1) * k] for i in range(6))
    progress = {t: [math.tanh(t / tau) for tau in TIMESCALES] for t in set(steps)}  # usually one step for all
    rows, new_avg = [], []
    for i, p in enumerate(params):
        n = p.numel()
        cos = dot[i] / (gn[i] * mn[i] + EPS)
        log_g = math.log10(gn[i] / math.sqrt(n) + 1e-16)
        first = steps[i] <= 1
        trend = 0.0 if first else min(max(log_g - avg[i], -5.0), 5.0)
        log_p = math.log10(pn[i] / math.sqrt(n) + 1e-8)
        shape = [math.log10(n) / 6, float(p.dim() <= 1)]
        rows.append([cos, trend, log_g / 5, log_p / 3, u_lr[i], *shape, *progress[steps[i]]])
        new_avg.append(log_g if first else 0.9 * avg[i] + 0.1 * log_g)
    dtype, device = params[0].dtype, params[0].device
    return torch.tensor(rows, dtype=dtype, device=device), torch.tensor(new_avg, dtype=dtype, device=device)


def host_rates(states: list[State], ws: list[dict[str, Any]]) -> tuple[list[float], list[float], list[float]]:
    """Each tensor's learning rate, momentum and weight decay, from the workspace when it was filled from
    this very state (between controller calls), else with one transfer to the host."""
    if not all(w.get("rates", (None,))[0] is s["lr"] for w, s in zip(ws, states)):
        n = len(states)
        flat = torch.stack([s[k] for k in ("lr", "beta", "wd") for s in states]).tolist()
        remember_rates(states, ws, flat[:n], flat[n : 2 * n], flat[2 * n :])
    lr, beta, wd = zip(*(w["rates"][1] for w in ws))
    return list(lr), list(beta), list(wd)


def remember_rates(
    states: list[State], ws: list[dict[str, Any]], lr: list[float], beta: list[float], wd: list[float]
) -> None:
    """Keep the rates on the host, tied to the state's learning-rate tensor (a new state invalidates them)."""
    for w, state, row in zip(ws, states, zip(lr, beta, wd)):
        w["rates"] = (state["lr"], row)


def adam_weights(
    steps: list[float], beta: list[float], corrected: bool = False
) -> tuple[list[float], list[float], list[float]]:
    """Per tensor: the weight of the gradient in m, the decay of v and the weight of g**2 in v.

    A fresh state's moments are zero: weight 1 on the gradient starts m at g and v at g**2, as forward does.
    ``corrected``: the weights of Adam's bias-corrected moments, ``(1 - beta) / (1 - beta**t)`` (see
    :func:`moment_weight`), so that m and v are running means of all gradients so far until about
    ``1 / (1 - beta)`` steps, not dominated by the first one.
    """
    m_weight = [moment_weight(b, t, corrected) for b, t in zip(beta, steps)]
    v_weight = [moment_weight(ADAM_BETA2, t, corrected) for t in steps]
    return m_weight, [1 - w for w in v_weight], v_weight


def moment_weight(beta: float, step: float, corrected: bool) -> float:
    """The weight of step ``step``'s gradient in a moment of decay ``beta``: 1 on the first step, then
    ``1 - beta``, or with ``corrected`` Adam's ``(1 - beta) / (1 - beta**step)`` (exact for a constant
    ``beta``; for the controller's changing momentum, the correction at the current one), taken as
    ``1 - beta`` once ``beta**step`` is below :data:`SETTLED`."""
    if step <= 1:
        return 1.0
    if not corrected:
        return 1 - beta
    rest = beta**step
    return 1 - beta if rest < SETTLED else (1 - beta) / (1 - rest)


def constants(ws: list[dict[str, Any]], key: str, values: list[float], like: Tensor) -> list[Tensor]:
    """``values`` as 0-dim tensors of ``like``'s dtype and device, kept in the workspace under ``key``.

    On the CPU, a foreach operation with one Python number per tensor converts every number to a tensor
    on each call; with tensors it costs about half as much. The tensors are made again when a value
    changes; they are kept once for all the tensors (in the first one's workspace), so that the usual
    case, the same values as on the last step, costs one comparison.
    """
    key, wanted = "constants:" + key, tuple(values)
    kept = ws[0].get(key)
    if kept is not None and kept[0] == wanted and _fits(kept[1][0], like):
        return cast(list[Tensor], kept[1])
    made = list(torch.tensor(wanted, dtype=like.dtype, device=like.device).unbind())
    ws[0][key] = (wanted, made)
    return made


def _fits(t: Tensor, like: Tensor) -> bool:
    return t.dtype == like.dtype and t.device == like.device


@functools.cache
def constant(value: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """One 0-dim tensor per value, dtype and device, for foreach operations that add the same number to
    every tensor (see :func:`constants`); never written to."""
    return torch.tensor(value, dtype=dtype, device=device)


def decay_(params: list[Tensor], keep: list[float], ws: list[dict[str, Any]]) -> None:
    """``params[i] *= keep[i]``, skipped when every factor rounds to 1 in the parameters' dtype (the
    product would be the parameters themselves): a weight decay of about 1e-8 per step costs a pass."""
    if any(1.0 - k >= torch.finfo(params[0].dtype).eps / 4 or k > 1.0 for k in keep):
        torch._foreach_mul_(params, constants(ws, "keep", keep, params[0]))


def update_(
    base: str,
    params: list[Tensor],
    grads: list[Tensor],
    states: list[State],
    steps: list[float],
    rates: tuple[list[float], list[float], list[float]],
    ws: list[dict[str, Any]],
    corrected: bool = False,
) -> None:
    """The base optimizer's step with per-tensor ``(lr, beta, wd)``, in place on ``params`` and the moments
    (Adam's bias-corrected ones with ``corrected``, see :func:`adam_weights`).

    ``ws`` (one dict per tensor, kept by the caller) holds the step's constants as tensors (:func:`constants`).
    """
    lr, beta, wd = rates
    m = [s["m"] for s in states]
    keep, neg_lr = [1 - r * w for r, w in zip(lr, wd)], [-r for r in lr]
    if base == "sgd":
        torch._foreach_mul_(m, constants(ws, "beta", beta, m[0]))
        torch._foreach_add_(m, grads)
        decay_(params, keep, ws)
        torch._foreach_add_(params, torch._foreach_mul(m, neg_lr))
        return
    m_weight, v_decay, v_weight = adam_weights(steps, beta, corrected)
    v = [s["v"] for s in states]
    torch._foreach_lerp_(m, grads, m_weight)
    torch._foreach_mul_(v, constants(ws, "v_decay", v_decay, v[0]))
    torch._foreach_addcmul_(v, grads, grads, v_weight)
    denom = buffers(ws, "denom", v)  # no new large tensor per step
    for t, d in zip(v, denom):
        torch.sqrt(t, out=d)
    torch._foreach_add_(denom, [constant(EPS, v[0].dtype, v[0].device)] * len(v))
    decay_(params, keep, ws)
    torch._foreach_addcdiv_(params, m, denom, neg_lr)


def buffer(space: dict[str, Tensor], key: str, like: Tensor) -> Tensor:
    """``space[key]`` if it fits ``like`` (and is not ``like`` itself), else a new one stored there."""
    buf = space.get(key)
    if (
        buf is None
        or buf.shape != like.shape
        or buf.dtype != like.dtype
        or buf.device != like.device
        or buf.data_ptr() == like.data_ptr()
    ):
        buf = space[key] = torch.empty_like(like)
    return buf


def buffers(ws: list[dict[str, Any]], key: str, like: list[Tensor]) -> list[Tensor]:
    """One :func:`buffer` per tensor of ``like``; the list is kept (in the first tensor's workspace) for as
    long as ``like`` holds the same tensors, so the usual step checks identities only."""
    kept = ws[0].get("buffers:" + key)
    if kept is not None and len(kept[0]) == len(like) and all(a is b for a, b in zip(kept[0], like)):
        return cast(list[Tensor], kept[1])
    made = [buffer(w, key, t) for w, t in zip(ws, like)]
    ws[0]["buffers:" + key] = (list(like), made)
    return made


def update_into(
    base: str,
    params: list[Tensor],
    grads: list[Tensor],
    states: list[State],
    steps: list[float],
    rates: tuple[list[float], list[float], list[float]],
    ws: list[dict[str, Tensor]],
    corrected: bool = False,
) -> tuple[list[Tensor], dict[str, list[Tensor]]]:
    """:func:`update_` into workspace buffers, leaving ``params`` and the states as they are.

    Fresh allocations of large tensors cost page faults on every step, hence the buffers.
    """
    lr, beta, wd = rates
    keep, neg_lr = [1 - r * w for r, w in zip(lr, wd)], [-r for r in lr]
    new_params = [buffer(w, "param", x) for w, x in zip(ws, params)]
    m_old = [s["m"] for s in states]
    m = [buffer(w, "m", t) for w, t in zip(ws, m_old)]
    if base == "sgd":
        for i, x in enumerate(params):
            torch.mul(m_old[i], beta[i], out=m[i])
            torch.mul(x, keep[i], out=new_params[i])
        torch._foreach_add_(m, grads)
        for i, new in enumerate(new_params):
            new.add_(m[i], alpha=neg_lr[i])
        return new_params, {"m": m}
    m_weight, v_decay, v_weight = adam_weights(steps, beta, corrected)
    v_old = [s["v"] for s in states]
    v, denom = [buffer(w, "v", t) for w, t in zip(ws, v_old)], [buffer(w, "denom", t) for w, t in zip(ws, v_old)]
    for i, x in enumerate(params):  # the arithmetic of update_, operation for operation
        torch.lerp(m_old[i], grads[i], m_weight[i], out=m[i])
        torch.mul(v_old[i], v_decay[i], out=v[i])
        torch.mul(x, keep[i], out=new_params[i])
    torch._foreach_addcmul_(v, grads, grads, v_weight)
    for i, t in enumerate(v):
        torch.sqrt(t, out=denom[i])
    torch._foreach_add_(denom, EPS)
    torch._foreach_addcdiv_(new_params, m, denom, neg_lr)
    return new_params, {"m": m, "v": v}
