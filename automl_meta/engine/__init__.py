"""The functional core: parameter dictionaries, inner loops vmapped over tasks, losses."""

from .devices import resolve_device
from .inner_loop import Params, adapt, batched_adapt, batched_query_losses, functional_apply
from .learned_update import batched_init_states, batched_rule_step, batched_unroll, rule_step
from .losses import masked_accuracy, masked_cross_entropy, masked_mse, task_loss

__all__ = [
    "Params",
    "adapt",
    "batched_adapt",
    "batched_query_losses",
    "functional_apply",
    "masked_accuracy",
    "rule_step",
    "batched_rule_step",
    "batched_init_states",
    "batched_unroll",
    "masked_cross_entropy",
    "masked_mse",
    "task_loss",
    "resolve_device",
]
