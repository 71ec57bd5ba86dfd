"""Checks that :class:`~automl_meta.optim.LearnedOptimizer`'s gradients and updates are finite, with errors
that name the parameter."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor

from ..learners.update_rule import clamp_grad, grad_limit

Work = tuple[int, int, float, Tensor]  # group index, index in the group, lr, parameter


def checked_grads(work: list[Work], dtype: torch.dtype) -> tuple[list[Tensor], list[Tensor], list[Tensor] | None]:
    """The parameters and gradients in ``dtype``, gradients clamped, and their norms when at hand.

    Raises FloatingPointError, naming the parameter, when a gradient holds NaN or inf.
    """
    if own_dtype(work, dtype):  # no conversion: the parameters themselves (step runs without autograd)
        xs, gs = [p for *_, p in work], [cast(Tensor, p.grad) for *_, p in work]
    else:  # float16 and bfloat16: float32 copies
        xs, gs = [p.detach().to(dtype) for *_, p in work], [cast(Tensor, p.grad).to(dtype) for *_, p in work]
    g_norms = list(torch._foreach_norm(gs))
    # Norms within the clamp limit mean finite entries that the clamp leaves as they are.
    if all_within(g_norms, grad_limit(dtype)):
        return xs, gs, g_norms
    if (bad := first_nonfinite(work, gs)) is not None:
        gi, pi, _, p = bad
        raise FloatingPointError(
            f"The gradient of parameter {pi} in group {gi} (shape {tuple(p.shape)}) contains NaN or "
            "inf, so no parameter was updated. Check the loss for overflow (e.g. log of 0), lower the "
            "input scale, or clip gradients with torch.nn.utils.clip_grad_norm_ before step()."
        )
    return xs, [clamp_grad(g) for g in gs], None


def own_dtype(work: list[Work], dtype: torch.dtype) -> bool:
    """Whether every parameter is of the compute dtype (a batch may mix float16 and bfloat16 with float32)."""
    return all(p.dtype == dtype for *_, p in work)


def first_nonfinite(work: list[Work], tensors: list[Tensor]) -> Work | None:
    """The work item of the first of ``tensors`` (one per item) that holds NaN or inf, if any."""
    return next((item for item, t in zip(work, tensors) if not _all_finite(t)), None)


def all_within(norms: list[Tensor], limit: float) -> bool:
    """Whether every norm is below ``limit`` (one host sync for all; NaN is not)."""
    return all(n < limit for n in torch.stack(norms).tolist())


def _all_finite(t: Tensor) -> bool:
    # A sum is one cheap pass and is finite whenever every entry is (it may overflow, hence the exact check).
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())
