"""MAML (Finn et al., 2017) and its first-order approximation."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from .._validation import check_bool
from .base import Learner


class MAML(Learner):
    """Model-Agnostic Meta-Learning: meta-learns an initialisation.

    The inner loop takes ``inner_steps`` steps of plain gradient descent with
    the fixed ``inner_lr``; the meta-gradient differentiates through them
    (second order), or treats inner gradients as constants when
    ``first_order=True``.

    Meta-learns: ``init``.

    Examples
    --------
    >>> import automl_meta as am
    >>> learner = am.learners.MAML(am.models.MLP([40, 40]), inner_steps=1, inner_lr=0.01)
    >>> artifact = am.MetaTrainer(learner, am.tasks.Sinusoid(shots=10), iterations=5, verbose=0).fit()
    >>> artifact.manifest["learner"]["name"]
    'maml'
    """

    name: ClassVar[str] = "maml"
    meta_learns = ("init",)

    def __init__(
        self, model: nn.Module, *, inner_steps: int = 1, inner_lr: float = 0.01, first_order: bool = False
    ) -> None:
        super().__init__(model, inner_steps=inner_steps, inner_lr=inner_lr)
        self.first_order = check_bool(first_order, "first_order")

    def _config_kwargs(self) -> dict[str, Any]:
        return {**super()._config_kwargs(), "first_order": self.first_order}


class FirstOrderMAML(MAML):
    """First-order MAML: the meta-gradient is the query gradient at the fast weights.

    Same as ``MAML(..., first_order=True)``.

    Meta-learns: ``init``.
    """

    name: ClassVar[str] = "fomaml"

    def __init__(
        self, model: nn.Module, *, inner_steps: int = 1, inner_lr: float = 0.01, first_order: bool = True
    ) -> None:
        if first_order is not True:
            raise ValueError("FirstOrderMAML is always first order; use MAML for second-order gradients.")
        super().__init__(model, inner_steps=inner_steps, inner_lr=inner_lr, first_order=True)

    def _config_kwargs(self) -> dict[str, Any]:
        kw = super()._config_kwargs()
        kw.pop("first_order")
        return kw
