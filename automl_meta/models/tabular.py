"""A backbone for tabular data of any width and any number of classes."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .._validation import check_nonnegative_int, check_positive_int


class TabularNet(nn.Module):
    """Shape-agnostic network: one set of weights serves tables of any width and any class count.

    - **Any width.** Feature ``j`` enters through row ``j`` of an input matrix of
      ``max_features`` rows; zero-padded features contribute nothing, and a
      layer norm makes the embedding's scale independent of the width. The
      rows are exchangeable (tasks present features in arbitrary order), so
      what is meta-learned is how to start and adapt them, not what they mean.
    - **Any number of classes.** The head is not a fixed table of class
      weights: each task starts from a ridge-regression head fitted in closed
      form to its support set's embeddings (one-hot targets for classes, raw
      targets for regression), with a meta-learned ridge penalty and logit
      scale. ``max_outputs`` only bounds the padded width of a batch.

    Parameters
    ----------
    hidden : int, default=128
        Width of the embedding.
    depth : int, default=2
        Residual blocks after the input layer.
    max_features : int, default=512
        The widest table the network accepts.
    max_outputs : int, default=10
        The most classes (or regression targets) a task may have.

    Examples
    --------
    >>> import torch
    >>> from automl_meta.models import TabularNet
    >>> net = TabularNet(hidden=16, depth=1, max_features=8, max_outputs=3)
    >>> net(torch.zeros(5, 4)).shape   # 5 rows of a 4-feature table, padded to 3 outputs
    torch.Size([5, 3])
    """

    is_built = True
    flexible_widths = True  # in/out_features are maxima: tasks may be narrower

    def __init__(
        self, hidden: int = 128, depth: int = 2, *, max_features: int = 512, max_outputs: int = 10, seed: int = 0
    ) -> None:
        super().__init__()
        hidden = check_positive_int(hidden, "hidden")
        max_features = check_positive_int(max_features, "max_features")
        max_outputs = check_positive_int(max_outputs, "max_outputs")
        depth = check_nonnegative_int(depth, "depth")
        self.hidden, self.depth, self.seed = hidden, depth, seed
        self.in_features, self.out_features = max_features, max_outputs
        g = torch.Generator().manual_seed(seed)
        self.input = nn.Parameter(torch.randn(max_features, hidden, generator=g))
        self.input_bias = nn.Parameter(torch.zeros(hidden))
        self.blocks = nn.ModuleList()
        for _ in range(depth):
            lin = nn.Linear(hidden, hidden)
            with torch.no_grad():
                lin.weight.uniform_(-1 / math.sqrt(hidden), 1 / math.sqrt(hidden), generator=g)
                lin.bias.zero_()
            self.blocks.append(lin)
        self.head = nn.Linear(hidden, max_outputs)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()
        # Meta-learned settings of the closed-form head: log ridge penalty and log logit scale.
        self.log_ridge = nn.Parameter(torch.tensor(0.0))
        self.log_scale = nn.Parameter(torch.tensor(math.log(4.0)))

    def build(self, in_features: int, out_features: int, generator: torch.Generator | None = None) -> TabularNet:
        """Check that a task family fits; the widths are maxima, fixed at construction."""
        if in_features > self.in_features or out_features > self.out_features:
            raise ValueError(
                f"TabularNet(max_features={self.in_features}, max_outputs={self.out_features}) "
                f"cannot serve tasks with {in_features} features and {out_features} outputs."
            )
        return self

    @property
    def head_names(self) -> list[str]:
        return ["head.weight", "head.bias"]

    def embed(self, x: Tensor) -> Tensor:
        """Embeddings of the rows of ``x`` (n_samples, n_features <= max_features)."""
        z = x @ self.input[: x.shape[-1]] + self.input_bias
        z = nn.functional.layer_norm(z, (self.hidden,))
        for block in self.blocks:
            z = nn.functional.layer_norm(z + torch.relu(block(z)), (self.hidden,))
        return z

    def forward(self, x: Tensor, embed_only: bool = False) -> Tensor:
        """Outputs (padded to ``max_outputs``), or with ``embed_only`` the embeddings."""
        if x.shape[-1] > self.in_features:
            raise ValueError(f"x has {x.shape[-1]} features; this TabularNet takes at most {self.in_features}.")
        z = self.embed(x)
        return z if embed_only else self.head(z) * self.log_scale.exp()

    def initialize_from_support(self, params: dict[str, Tensor], support: dict[str, Tensor]) -> dict[str, Tensor]:
        """Start the head at the ridge-regression fit of the support set's embeddings.

        Targets are one-hot class indicators (classification, masked to the
        task's classes) or the raw targets (regression). Padded samples carry
        zero weight; ``support["mask"]`` may also carry sample weights.
        """
        h = functional_call(self, params, (support["x"],), {"embed_only": True})
        m = support["mask"]
        y = support["y"]
        present = support["class_mask"]
        if y.dtype in (torch.int64, torch.int32):
            targets = nn.functional.one_hot(y, present.shape[-1]).to(h.dtype) * present
            targets = targets - present / present.sum()  # centred indicators
        else:
            targets = y * present
        ha = torch.cat([h, torch.ones_like(h[:, :1])], 1) * m.sqrt()[:, None]
        ta = targets * m.sqrt()[:, None]
        ridge = params["log_ridge"].exp() * torch.eye(self.hidden + 1, dtype=h.dtype, device=h.device)
        coef = torch.linalg.solve(ha.T @ ha + ridge, ha.T @ ta)  # (hidden + 1, the batch's outputs)
        coef = nn.functional.pad(coef, (0, self.out_features - coef.shape[1])) / params["log_scale"].exp()
        return {**params, "head.weight": coef[:-1].T, "head.bias": coef[-1]}

    def get_config(self) -> dict[str, Any]:
        return {
            "name": "TabularNet",
            "hidden": self.hidden,
            "depth": self.depth,
            "max_features": self.in_features,
            "max_outputs": self.out_features,
            "seed": self.seed,
        }
