"""Per-task losses with masks for padded samples, features and classes.

Each function scores one task (no task axis); the engine maps them over a
batch with :func:`torch.vmap`.
"""

from __future__ import annotations

import torch
from torch import Tensor

# A large negative logit for classes a task does not have: finite, so that gradients stay finite.
_ABSENT_CLASS_LOGIT = -1e9


def masked_mse(pred: Tensor, y: Tensor, mask: Tensor, output_mask: Tensor) -> Tensor:
    """Mean squared error over real samples (``mask``) and real outputs (``output_mask``)."""
    sq = (pred - y) ** 2 * output_mask
    return (sq.sum(-1) * mask).sum() / (mask.sum() * output_mask.sum())


def masked_cross_entropy(logits: Tensor, y: Tensor, mask: Tensor, class_mask: Tensor) -> Tensor:
    """Mean cross-entropy over real samples; classes outside ``class_mask`` get no probability."""
    logits = torch.where(class_mask > 0, logits, torch.full_like(logits, _ABSENT_CLASS_LOGIT))
    nll = -torch.log_softmax(logits, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    return (nll * mask).sum() / mask.sum()


def masked_accuracy(logits: Tensor, y: Tensor, mask: Tensor, class_mask: Tensor) -> Tensor:
    """Fraction of real samples whose most likely (present) class is right."""
    logits = torch.where(class_mask > 0, logits, torch.full_like(logits, _ABSENT_CLASS_LOGIT))
    hit = (logits.argmax(-1) == y).to(mask.dtype)
    return (hit * mask).sum() / mask.sum()


def task_loss(pred: Tensor, data: dict[str, Tensor], task_type: str) -> Tensor:
    """The loss of one task's predictions: MSE for regression, cross-entropy for classification.

    Outputs beyond the batch's width (a model sized for more classes than any task here has) are ignored.
    """
    pred = pred[..., : data["class_mask"].shape[-1]]
    if task_type == "classification":
        return masked_cross_entropy(pred, data["y"], data["mask"], data["class_mask"])
    return masked_mse(pred, data["y"], data["mask"], data["class_mask"])
