"""The meta-objective of :class:`~automl_meta.training.UnrolledTrainer` over one truncation of inner training.

The meta-loss of a truncation is the mean over tasks and steps of ``log(loss_t / loss_0)`` on each task's
training data, plus, with a ``val_weight``, that weight times ``log(val_t / val_0)`` on the task's held-out
data after the truncation's last step: a rule that drives the training loss down by overfitting pays for it.
Inner gradients are taken on the whole training data, or on mini-batches of it (:class:`MiniBatches`), as
users train; the training loss in the meta-loss is always the whole training data's, so that the
meta-objective measures progress rather than the luck of a batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from .._validation import check_nonnegative_float, check_positive_int
from ..engine import Params
from ..engine.cooldown import cooldown_scale
from ..engine.learned_update import States, batched_init_states, batched_unroll
from ..learners import UpdateRule
from ..tasks import OptimizeeBatch
from ._outer_loop import seeded_rng

Initial = tuple[torch.Tensor, torch.Tensor]  # each task's training and held-out loss before its first step
_LOG_FLOOR = 1e-12  # losses are floored here inside the log: a task trained to zero loss stays finite


def relative_log_losses(losses: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
    """``log(loss_t / loss_0)`` for losses of shape (steps, n_tasks); NaN losses count as 10x the start."""
    ratio = torch.log(losses.clamp_min(_LOG_FLOOR)) - torch.log(initial.clamp_min(_LOG_FLOOR))
    return torch.where(torch.isfinite(ratio), ratio, torch.full_like(ratio, math.log(10.0)))


def moved(batch: OptimizeeBatch, device: torch.device) -> OptimizeeBatch:
    """``batch`` with its tensors on ``device`` (its loss function holds no tensors)."""
    if device.type == "cpu":
        return batch

    def move(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(device) for k, v in d.items()}

    return replace(batch, params=move(batch.params), train=move(batch.train), val=move(batch.val))


def check_rule_and_estimator(rule: Any, estimator: str, estimators: Sequence[str]) -> None:
    """Raise TypeError for a rule that is not an UpdateRule, ValueError for an unknown estimator."""
    if not isinstance(rule, UpdateRule):
        raise TypeError(f"rule must be an automl_meta UpdateRule (e.g. HyperController), got {type(rule).__name__}.")
    if estimator not in estimators:
        raise ValueError(f"estimator must be one of {tuple(estimators)}, got {estimator!r}.")


def check_batch_size(value: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """None, or the (low, high) range of mini-batch sizes; raise ValueError otherwise."""
    if value is None:
        return None
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    ints = isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(v, (int, np.integer)) for v in pair)
    if not ints or not 1 <= pair[0] <= pair[1]:
        raise ValueError(f"batch_size must be None, an int or a (low, high) pair of ints >= 1, got {value!r}.")
    return int(pair[0]), int(pair[1])


def check_truncations(
    horizon: Any, unroll: Any, updates: Any, estimator: str, loss_every: Any = 1
) -> tuple[int, int, int, int]:
    """``(horizon, unroll, updates per episode, loss_every)`` checked (updates: every truncation when None)."""
    horizon, unroll = check_positive_int(horizon, "horizon"), check_positive_int(unroll, "unroll")
    if horizon % unroll:
        raise ValueError(f"unroll ({unroll}) must divide horizon ({horizon}).")
    truncations = horizon // unroll
    updates = check_positive_int(truncations if updates is None else updates, "updates_per_episode")
    if updates > truncations:
        raise ValueError(f"updates_per_episode ({updates}) exceeds the {truncations} truncations of an episode.")
    if estimator == "pes" and updates < truncations:  # its particles run every truncation anyway
        raise ValueError("estimator='pes' updates the rule after every truncation: leave updates_per_episode unset.")
    return horizon, unroll, updates, check_positive_int(loss_every, "loss_every")


@dataclass(frozen=True)
class MiniBatches:
    """The mini-batches of one problem batch: a size drawn log-uniformly from ``sizes``, fresh rows each step.

    Every draw depends only on ``(seed, *key, step)`` (``key`` names the batch, e.g. its episode), so
    ES's antithetic pairs see the same batches and a resumed run draws the ones an uninterrupted run would.
    """

    sizes: tuple[int, int]
    seed: int
    key: tuple[int, ...]

    @property
    def size(self) -> int:
        lo, hi = self.sizes
        u = seeded_rng(self.seed, 3, *self.key).random()
        return int(round(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))))

    def __call__(self, batch: OptimizeeBatch, step: int) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(int(seeded_rng(self.seed, 4, *self.key, step).integers(2**62)))
        return batch.minibatch(self.size, gen)


def truncation_loss(
    rule: UpdateRule,
    batch: OptimizeeBatch,
    params: Params,
    states: States,
    *,
    first_step: int,
    steps: int,
    initial: Initial,
    val_weight: float = 0.0,
    batches: MiniBatches | None = None,
    weights: Params | None = None,
    loss_every: int = 1,
    scale: Callable[[int], float] | None = None,
) -> tuple[torch.Tensor, Params, States]:
    """The meta-loss of ``steps`` inner steps from ``params`` (module docstring); the tasks' new params and states.

    ``initial`` holds each task's training and held-out loss before its first step. The training term
    averages the losses after every ``loss_every``-th step and the last (:func:`batched_unroll`); ``scale``
    multiplies each step's update (:func:`batched_unroll`).
    """
    grad_data = None if batches is None else (lambda step: batches(batch, step))
    losses, params, states = batched_unroll(
        rule, batch.loss, params, states, batch.train, first_step=first_step, steps=steps, weights=weights,
        grad_data=grad_data, loss_every=loss_every, scale=scale,
    )  # fmt: skip
    meta_loss = relative_log_losses(losses[1:], initial[0]).mean()
    if check_nonnegative_float(val_weight, "val_weight") > 0:
        val = torch.vmap(batch.loss)(params, batch.val)
        meta_loss = meta_loss + val_weight * relative_log_losses(val[None], initial[1]).mean()
    return meta_loss, params, states


def initial_losses(batch: OptimizeeBatch, params: Params) -> Initial:
    """Each task's training and held-out loss at ``params`` (no gradients)."""
    with torch.no_grad():
        return torch.vmap(batch.loss)(params, batch.train), torch.vmap(batch.loss)(params, batch.val)


@torch.no_grad()
def validation_loss(
    rule: UpdateRule,
    batches: Sequence[OptimizeeBatch],
    *,
    steps: int,
    val_weight: float,
    mini_batches: Callable[[int], MiniBatches | None],
    loss_every: int = 1,
    cooldown: float = 0.0,
) -> float:
    """The mean meta-loss of ``rule`` over runs of ``steps`` steps on ``batches`` (the i-th on
    ``mini_batches(i)``), each cooling down over its last ``cooldown`` fraction of steps."""
    scores = []
    for i, batch in enumerate(batches):
        loss, _, _ = truncation_loss(
            rule, batch, batch.params, batched_init_states(rule, batch.params), first_step=1, steps=steps,
            initial=initial_losses(batch, batch.params), val_weight=val_weight, batches=mini_batches(i),
            loss_every=loss_every, scale=(lambda t: cooldown_scale(t, steps, cooldown)) if cooldown else None,
        )  # fmt: skip
        scores.append(float(loss))
    return float(np.mean(scores))
