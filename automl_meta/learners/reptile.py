"""Reptile (Nichol et al., 2018): move the initialisation towards each task's adapted weights."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..engine import batched_adapt, functional_apply, task_loss
from ..tasks import TaskBatch
from .base import Learner


class Reptile(Learner):
    """Reptile: no second derivatives, no query set in the update.

    Each task runs ``inner_steps`` SGD steps from ``theta`` on its support set,
    reaching ``theta'``. The meta-gradient handed to the outer optimizer is
    ``theta - mean(theta')``, so an outer SGD step of size ``eps`` gives
    Reptile's update ``theta + eps * (mean(theta') - theta)``.

    Meta-learns: ``init``.

    Examples
    --------
    >>> import automl_meta as am
    >>> learner = am.learners.Reptile(am.models.MLP([40, 40]), inner_steps=5, inner_lr=0.02)
    >>> artifact = am.MetaTrainer(learner, am.tasks.Sinusoid(shots=10), iterations=5, verbose=0).fit()
    >>> artifact.manifest["learner"]["name"]
    'reptile'
    """

    name: ClassVar[str] = "reptile"
    meta_learns = ("init",)

    def __init__(self, model: nn.Module, *, inner_steps: int = 5, inner_lr: float = 0.01) -> None:
        super().__init__(model, inner_steps=inner_steps, inner_lr=inner_lr)

    def meta_backward(self, batch: TaskBatch) -> dict[str, float]:
        self._require_setup()
        self._check_batch(batch)
        apply, params = functional_apply(self.model), self.init_params()
        task_type = self.task_type
        assert task_type is not None  # _require_setup() checked it
        with torch.no_grad():
            fast = batched_adapt(apply, params, self.inner_rates(), batch.support(), **self._engine_kwargs(None))
            direction = {n: params[n] - fast[n].mean(0) for n in params}
            # The query loss of the adapted weights, reported for monitoring only.
            losses = torch.vmap(lambda f, q: task_loss(apply(f, q["x"]), q, task_type))(fast, batch.query())
        for n, p in params.items():
            p.grad = direction[n] if p.grad is None else p.grad + direction[n]
        loss = float(losses.mean())
        return {"loss": loss, "metric": loss}
