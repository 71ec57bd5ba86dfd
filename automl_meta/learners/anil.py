"""ANIL (Raghu et al., 2020): adapt only the head; the body is a meta-learned feature extractor."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, cast

from torch import nn

from .maml import MAML


class ANIL(MAML):
    """Almost No Inner Loop: MAML whose inner loop adapts only the model's last layer.

    The body still receives meta-gradients (through the head's adaptation), so
    it learns features that a few head steps can use. Cheaper than MAML and, on
    many problems, as good. The model must name its head (``head_names``).

    Meta-learns: ``init``.

    Examples
    --------
    >>> import automl_meta as am
    >>> learner = am.learners.ANIL(am.models.MLP([40, 40], in_features=1, out_features=1))
    >>> learner.setup("regression", 1, 1).adapted_names()
    ['layers.4.weight', 'layers.4.bias']
    """

    name: ClassVar[str] = "anil"

    def __init__(
        self, model: nn.Module, *, inner_steps: int = 1, inner_lr: float = 0.01, first_order: bool = False
    ) -> None:
        if not hasattr(model, "head_names"):
            raise TypeError("ANIL needs a model that names its head parameters (a `head_names` property).")
        super().__init__(model, inner_steps=inner_steps, inner_lr=inner_lr, first_order=first_order)

    def adapted_names(self) -> list[str]:
        return list(cast("Iterable[str]", self.model.head_names))  # __init__ checked that the model has them
