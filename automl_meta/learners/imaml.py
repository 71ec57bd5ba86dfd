"""iMAML (Rajeswaran et al., 2019): meta-gradients by implicit differentiation of a proximal inner loop."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .._validation import (
    check_bool,
    check_nonnegative_float,
    check_nonnegative_int,
    check_positive_float,
    check_positive_int,
)
from ..engine import Params, functional_apply
from ..engine.implicit import batched_anchors, batched_implicit_meta_gradients, batched_proximal_adapt, score_query
from ..tasks import TaskBatch
from .base import Learner


class IMAML(Learner):
    """Implicit MAML: meta-learns an initialisation without differentiating through the inner loop.

    Each task adapts by ``inner_steps`` steps of gradient descent (step size ``inner_lr``) on
    its support loss plus the proximal term ``lam / 2 * ||phi - theta||^2``, which keeps the
    adapted weights ``phi`` near the initialisation ``theta``. At the solution ``phi*``,
    ``d phi* / d theta = (I + H / lam)^-1`` with ``H`` the Hessian of the support loss, so
    the meta-gradient is ``v = (I + H / lam)^-1 g``, ``g`` the query gradient at ``phi*``;
    ``v`` is found by ``cg_steps`` steps of conjugate gradient on Hessian-vector products,
    for all tasks at once. No graph is kept across inner steps: memory does not grow with
    ``inner_steps``, which makes iMAML the choice when MAML runs out of memory.

    The formula is exact at the minimiser of the proximal objective; give the inner loop
    enough steps to get close to it. Each task's step size is ``inner_lr`` capped at
    ``1 / (lam + h)``, ``h`` the largest curvature of its support loss at the start (power
    iteration on Hessian-vector products), and every step is safeguarded (not taken when it
    would raise the proximal objective, the next one then a quarter of the size). The loop is never
    differentiated, so neither costs the meta-gradient anything. The cap matters: meta-training
    sharpens the initialisation (it pays when the inner problem is solved), and with a fixed
    step the inner loop stops moving once the curvature passes ``2 / inner_lr``; the implicit
    gradient, which damps exactly those sharp directions, then no longer sees the query loss
    grow along them, and meta-training diverges (on the sinusoid tasks, after a few thousand
    iterations). Adapting to a new task (``adapt``, ``evaluate``) runs the same inner loop.

    Meta-learns: ``init``.

    Parameters
    ----------
    model : nn.Module
        The backbone, e.g. :class:`automl_meta.models.MLP`.
    inner_steps : int, default=10
        Gradient steps on the proximal support objective.
    inner_lr : float, default=0.01
        Their largest step size (see the cap above).
    lam : float, default=1.0
        Strength ``lambda`` of the proximal term: larger keeps ``phi`` closer to ``theta``
        (less adaptation, an easier inner problem and a better-conditioned CG system).
    cg_steps : int, default=5
        Conjugate-gradient steps for ``v`` (a system with ``n`` parameters is solved
        exactly in at most ``n`` steps; a few suffice in practice).
    cg_damping : float, default=0.0
        Added to the diagonal: CG solves ``((1 + cg_damping) I + H / lam) v = g``. A small
        positive value steadies CG where ``H`` has negative curvature; 0 is the exact system.
    first_order : bool, default=False
        Use ``v = g`` (no Hessian): cheaper, and biased like first-order MAML.

    Examples
    --------
    >>> import automl_meta as am
    >>> learner = am.learners.IMAML(am.models.MLP([40, 40]), inner_steps=5, inner_lr=0.02, lam=2.0)
    >>> artifact = am.MetaTrainer(learner, am.tasks.Sinusoid(shots=10), iterations=5, verbose=0).fit()
    >>> artifact.manifest["learner"]["name"], artifact.manifest["learner"]["lam"]
    ('imaml', 2.0)
    """

    name: ClassVar[str] = "imaml"
    meta_learns = ("init",)

    def __init__(
        self,
        model: nn.Module,
        *,
        inner_steps: int = 10,
        inner_lr: float = 0.01,
        lam: float = 1.0,
        cg_steps: int = 5,
        cg_damping: float = 0.0,
        first_order: bool = False,
    ) -> None:
        super().__init__(model, inner_steps=inner_steps, inner_lr=inner_lr)
        self.lam = check_positive_float(lam, "lam")
        self.cg_steps = check_positive_int(cg_steps, "cg_steps")
        self.cg_damping: float = check_nonnegative_float(cg_damping, "cg_damping")
        self.first_order = check_bool(first_order, "first_order")

    def _anchors(self, batch: TaskBatch) -> Params:
        # Models may start each task from a point fitted to its support set (see TabularNet).
        initialize = getattr(self.model, "initialize_from_support", None)
        return batched_anchors(self.init_params(), batch.support(), initialize)

    def meta_backward(self, batch: TaskBatch) -> dict[str, float]:
        """Accumulate the implicit meta-gradient of one meta-batch into ``.grad``; return its loss and metric."""
        self._require_setup()
        self._check_batch(batch)
        assert self.task_type is not None  # _require_setup() checked it
        anchors = self._anchors(batch)
        v, losses, metric = batched_implicit_meta_gradients(
            functional_apply(self.model),
            anchors,
            self.inner_rates(),
            batch.support(),
            batch.query(),
            steps=self.inner_steps,
            lam=self.lam,
            cg_steps=self.cg_steps,
            cg_damping=self.cg_damping,
            task_type=self.task_type,
            first_order=self.first_order,
            safeguard_after=0,
            curvature_cap=True,
        )
        loss = losses.mean()
        if torch.isfinite(loss):
            # The mean over tasks of each task's v, carried back through the anchors to the parameters.
            names = list(anchors)
            torch.autograd.backward([anchors[n] for n in names], [v[n] / len(batch) for n in names])
        return {"loss": float(loss), "metric": float(metric.mean())}

    def _proximal_kwargs(self, steps: int | None) -> dict[str, Any]:
        return {
            "steps": self.inner_steps if steps is None else check_nonnegative_int(steps, "steps"),
            "lam": self.lam,
            "task_type": self.task_type,
        }

    def query_losses(self, batch: TaskBatch, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """Per-task query loss and metric after the proximal inner loop.

        Differentiable through the unrolled steps when called under autograd (the MAML
        meta-gradient of the proximal objective); :meth:`meta_backward` uses the implicit one.
        """
        self._require_setup()
        self._check_batch(batch)
        apply, task_type = functional_apply(self.model), self.task_type
        assert task_type is not None  # _require_setup() checked it
        fast = batched_proximal_adapt(
            apply,
            self._anchors(batch),
            self.inner_rates(),
            batch.support(),
            safeguard_after=0,
            curvature_cap=True,
            **self._proximal_kwargs(steps),
        )
        return torch.vmap(lambda f, q: score_query(apply, f, q, task_type))(fast, batch.query())

    @torch.no_grad()
    def adapt_batch(self, batch: TaskBatch, steps: int | None = None, start: Params | None = None) -> Params:
        """Fast weights of every task in ``batch`` (leading task axis), by the proximal inner loop.

        ``start`` continues from earlier fast weights; the proximal term stays anchored at the
        meta-learned initialisation, so continuing ends where one longer adaptation would.
        """
        self._require_setup()
        self._check_batch(batch)
        return batched_proximal_adapt(
            functional_apply(self.model),
            self._anchors(batch),
            self.inner_rates(),
            batch.support(),
            start=start,
            safeguard_after=0,
            curvature_cap=True,
            **self._proximal_kwargs(steps),
        )

    def _config_kwargs(self) -> dict[str, Any]:
        return {
            **super()._config_kwargs(),
            "lam": self.lam,
            "cg_steps": self.cg_steps,
            "cg_damping": self.cg_damping,
            "first_order": self.first_order,
        }
