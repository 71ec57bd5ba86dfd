"""The functional core: parameter dictionaries, inner loops vmapped over tasks, losses."""

from .inner_loop import Params, adapt, batched_adapt, batched_query_losses, functional_apply
from .losses import masked_accuracy, masked_cross_entropy, masked_mse, task_loss

__all__ = ["Params", "adapt", "batched_adapt", "batched_query_losses", "functional_apply",
           "masked_accuracy", "masked_cross_entropy", "masked_mse", "task_loss"]
