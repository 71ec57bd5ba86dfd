"""The LSTM optimizer of Andrychowicz et al. (2016), coordinate-wise with their gradient preprocessing."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from .._validation import check_positive_float, check_positive_int
from .update_rule import State, UpdateRule, clamp_grad


def preprocess_gradient(g: Tensor, p: float = 10.0) -> Tensor:
    """The log/sign preprocessing of Andrychowicz et al. (2016), appendix A.

    Each gradient entry becomes two inputs: ``(log|g| / p, sign(g))`` when
    ``|g| >= exp(-p)``, and ``(-1, exp(p) * g)`` otherwise, so gradients of any
    magnitude map to inputs of order one. Zero maps to ``(-1, 0)``.

    Examples
    --------
    >>> import torch
    >>> preprocess_gradient(torch.tensor([0.0, 1e-30, 1.0, -1e30])).round(decimals=3)
    tensor([[-1.0000,  0.0000],
            [-1.0000,  0.0000],
            [ 0.0000,  1.0000],
            [ 6.9080, -1.0000]])
    """
    big = g.abs() >= math.exp(-p)
    # log of a safe value: the small branch never takes the log, but torch.where evaluates both.
    log_part = torch.where(big, g.abs().clamp_min(math.exp(-p)).log() / p, -torch.ones_like(g))
    sign_part = torch.where(big, torch.sign(g), g * math.exp(p))
    return torch.stack([log_part, sign_part], -1)


class LSTMOptimizer(UpdateRule):
    """Coordinate-wise two-layer LSTM optimizer (Andrychowicz et al., 2016).

    One small LSTM, shared by every coordinate of every tensor, reads each
    coordinate's preprocessed gradient (:func:`preprocess_gradient`) and its
    own hidden state and outputs that coordinate's update:
    ``theta <- theta - output_scale * W h_t``.

    Meta-learns: ``update_rule`` (the LSTM and output weights).

    Parameters
    ----------
    hidden_size : int, default=20
    num_layers : int, default=2
    preprocess_p : float, default=10.0
        The ``p`` of the gradient preprocessing.
    output_scale : float, default=0.1
        Multiplies the LSTM's output (0.1 in the paper).
    seed : int, default=0

    Notes
    -----
    The state holds ``2 * num_layers * hidden_size`` numbers per coordinate
    (80 with the defaults), so this rule suits small and medium models.

    Examples
    --------
    >>> import torch
    >>> from automl_meta.learners import LSTMOptimizer
    >>> rule = LSTMOptimizer()
    >>> p, g = torch.ones(3, 2), torch.full((3, 2), 0.5)
    >>> new_p, state = rule(p, g, rule.init_state(p), torch.tensor(1.0))
    >>> new_p.shape, state["h"].shape
    (torch.Size([3, 2]), torch.Size([6, 2, 20]))
    """

    name: ClassVar[str] = "lstm_optimizer"

    def __init__(
        self,
        *,
        hidden_size: int = 20,
        num_layers: int = 2,
        preprocess_p: float = 10.0,
        output_scale: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(seed=seed)
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        self.preprocess_p = check_positive_float(preprocess_p, "preprocess_p")
        self.output_scale = check_positive_float(output_scale, "output_scale")
        gen, h = self._generator(), self.hidden_size
        # Written out (not nn.LSTMCell) so that the cell runs under torch.vmap.
        self.input_maps = nn.ModuleList(
            [self._init_linear(nn.Linear(2 if i == 0 else h, 4 * h), gen) for i in range(self.num_layers)]
        )
        self.hidden_maps = nn.ModuleList(
            [self._init_linear(nn.Linear(h, 4 * h, bias=False), gen) for _ in range(self.num_layers)]
        )
        self.head = self._init_linear(nn.Linear(h, 1), gen, gain=0.1)
        with torch.no_grad():  # forget gates start open, as is usual for LSTMs
            for m in cast("Iterable[nn.Linear]", self.input_maps):
                m.bias[h : 2 * h] = 1.0

    def init_state(self, param: Tensor) -> State:
        shape = (param.numel(), self.num_layers, self.hidden_size)
        return {"h": param.new_zeros(shape), "c": param.new_zeros(shape)}

    def forward(self, param: Tensor, grad: Tensor, state: State, step: Tensor) -> tuple[Tensor, State]:
        x = preprocess_gradient(clamp_grad(grad).reshape(-1), self.preprocess_p)
        hs, cs = [], []
        for layer in range(self.num_layers):
            h, c = state["h"][:, layer], state["c"][:, layer]
            gates = self.input_maps[layer](x) + self.hidden_maps[layer](h)
            i, f, g, o = gates.chunk(4, -1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            hs.append(h)
            cs.append(c)
            x = h
        update = self.head(x).squeeze(-1).reshape(param.shape) * self.output_scale
        return param - update, {"h": torch.stack(hs, 1), "c": torch.stack(cs, 1)}

    def _config_kwargs(self) -> dict[str, Any]:
        return {
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "preprocess_p": self.preprocess_p,
            "output_scale": self.output_scale,
            **super()._config_kwargs(),
        }
