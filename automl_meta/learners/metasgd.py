"""Meta-SGD (Li et al., 2017): meta-learned initialisation and per-parameter step sizes."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from .._validation import check_bool
from .base import LearnedRatesMixin, Learner

GRANULARITIES = ("parameter", "tensor")


class MetaSGD(LearnedRatesMixin, Learner):
    """Meta-SGD: learns where to start and how far to step along each coordinate.

    The inner update is ``theta - alpha * grad`` with ``alpha`` a meta-learned
    tensor of the parameters' shape (``lr_granularity="parameter"``) or one
    learned scalar per tensor (``"tensor"``), initialised to ``inner_lr``.

    Meta-learns: ``init``, ``lr``.

    Examples
    --------
    >>> import automl_meta as am
    >>> learner = am.learners.MetaSGD(am.models.MLP([40, 40]), inner_steps=1)
    >>> artifact = am.MetaTrainer(learner, am.tasks.Sinusoid(shots=5), iterations=5, verbose=0).fit()
    >>> sorted(artifact.manifest["learner"]["meta_learns"])
    ['init', 'lr']
    """

    name: ClassVar[str] = "metasgd"
    meta_learns = ("init", "lr")

    def __init__(
        self,
        model: nn.Module,
        *,
        inner_steps: int = 1,
        inner_lr: float = 0.01,
        lr_granularity: str = "parameter",
        first_order: bool = False,
    ) -> None:
        super().__init__(model, inner_steps=inner_steps, inner_lr=inner_lr)
        if lr_granularity not in GRANULARITIES:
            raise ValueError(f"lr_granularity must be one of {GRANULARITIES}, got {lr_granularity!r}.")
        self.lr_granularity, self.first_order = lr_granularity, check_bool(first_order, "first_order")

    def _setup_meta(self) -> None:
        self._init_rates(self.lr_granularity)

    def _config_kwargs(self) -> dict[str, Any]:
        return {**super()._config_kwargs(), "lr_granularity": self.lr_granularity, "first_order": self.first_order}
