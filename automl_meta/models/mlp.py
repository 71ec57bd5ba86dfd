"""A multilayer perceptron whose input and output widths may be fixed later by the task family."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .._validation import check_int_sequence, check_positive_int

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


class MLP(nn.Module):
    """Fully connected network ``in -> hidden... -> out``.

    ``in_features`` and ``out_features`` may be left out: a learner then sets
    them from the task family when meta-training starts (:meth:`build`).

    Parameters
    ----------
    hidden_sizes : sequence of int, default=(40, 40)
        Widths of the hidden layers.
    in_features, out_features : int, optional
        Input and output widths.
    activation : {"relu", "tanh", "gelu", "silu"}, default="relu"

    Examples
    --------
    >>> import torch
    >>> from automl_meta.models import MLP
    >>> net = MLP([40, 40], in_features=1, out_features=1)
    >>> net(torch.zeros(5, 1)).shape
    torch.Size([5, 1])
    """

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (40, 40),
        *,
        in_features: int | None = None,
        out_features: int | None = None,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        sizes = check_int_sequence(hidden_sizes, "hidden_sizes")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
        self.hidden_sizes, self.activation = sizes, activation
        self.in_features, self.out_features = in_features, out_features
        self.layers: nn.Sequential | None = None
        if in_features is not None and out_features is not None:
            self.build(in_features, out_features)

    @property
    def is_built(self) -> bool:
        return self.layers is not None

    def build(self, in_features: int, out_features: int, generator: torch.Generator | None = None) -> MLP:
        """Create (or re-initialise) the layers for the given widths.

        Weights use PyTorch's default ``nn.Linear`` initialisation, drawn from
        ``generator`` so that a seed fixes them.
        """
        in_features = check_positive_int(in_features, "in_features")
        out_features = check_positive_int(out_features, "out_features")
        self.in_features, self.out_features = in_features, out_features
        widths = [in_features, *self.hidden_sizes, out_features]
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            lin = nn.Linear(a, b)
            bound = 1.0 / a**0.5  # nn.Linear's default range, drawn from our generator
            with torch.no_grad():
                lin.weight.uniform_(-bound, bound, generator=generator)
                lin.bias.uniform_(-bound, bound, generator=generator)
            mods.append(lin)
            if i < len(widths) - 2:
                mods.append(ACTIVATIONS[self.activation]())
        self.layers = nn.Sequential(*mods)
        return self

    @property
    def head_names(self) -> list[str]:
        """Names of the parameters of the last layer (what ANIL adapts)."""
        last = 2 * len(self.hidden_sizes)  # each hidden layer adds a Linear and an activation
        return [f"layers.{last}.weight", f"layers.{last}.bias"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layers is None:
            raise RuntimeError("This MLP has no layers yet: give in_features/out_features or call build().")
        return self.layers(x)

    def get_config(self) -> dict[str, Any]:
        """What rebuilds this architecture (see :func:`automl_meta.models.from_config`)."""
        return {
            "name": "MLP",
            "hidden_sizes": self.hidden_sizes,
            "activation": self.activation,
            "in_features": self.in_features,
            "out_features": self.out_features,
        }
