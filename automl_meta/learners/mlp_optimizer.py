"""A small per-parameter MLP optimizer in the style of Metz et al. (2022)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .._validation import check_int_sequence, check_positive_float
from .update_rule import TIMESCALES, State, UpdateRule, clamp_grad, progress_features

MOMENTUM_DECAYS = (0.5, 0.9, 0.99, 0.999)
RMS_DECAYS = (0.99, 0.999)
_EPS = 1e-8


class MLPOptimizer(UpdateRule):
    """Per-parameter MLP optimizer (after Metz et al., 2022, "Practical tradeoffs between memory,
    compute, and performance in learned optimizers").

    Every coordinate of every tensor goes through the same small MLP. Its inputs
    are the gradient, momenta at several time scales (:data:`MOMENTUM_DECAYS`),
    second-moment estimates (:data:`RMS_DECAYS`) and the momenta divided by
    them, the parameter itself, and training-progress features
    ``tanh(step / tau)``; each input except the progress features is divided by
    its root mean square over the tensor, so the rule sees scale-free inputs.
    The MLP outputs a direction ``d`` and a log-magnitude ``s``, and the update is
    ``theta <- theta - step_mult * d * exp(exp_mult * s)``.

    Meta-learns: ``update_rule`` (the MLP's weights).

    Parameters
    ----------
    hidden_sizes : sequence of int, default=(32, 32)
    step_mult, exp_mult : float, default=0.001
        Scales of the direction and of the log-magnitude (as in Metz et al.).
    seed : int, default=0

    Examples
    --------
    >>> import torch
    >>> from automl_meta.learners import MLPOptimizer
    >>> rule = MLPOptimizer()
    >>> p = torch.ones(4)
    >>> new_p, state = rule(p, torch.ones(4), rule.init_state(p), torch.tensor(1.0))
    >>> bool((new_p - p).abs().max() < 0.1)
    True
    """

    name: ClassVar[str] = "mlp_optimizer"
    n_features = 2 + 2 * len(MOMENTUM_DECAYS) + 2 * len(RMS_DECAYS) + len(TIMESCALES)

    def __init__(
        self, *, hidden_sizes: Sequence[int] = (32, 32), step_mult: float = 1e-3, exp_mult: float = 1e-3, seed: int = 0
    ) -> None:
        super().__init__(seed=seed)
        sizes = check_int_sequence(hidden_sizes, "hidden_sizes", nonempty=True)
        self.hidden_sizes = sizes
        self.step_mult = check_positive_float(step_mult, "step_mult")
        self.exp_mult = check_positive_float(exp_mult, "exp_mult")
        gen = self._generator()
        widths = [self.n_features, *sizes]
        self.hidden = nn.ModuleList([self._init_linear(nn.Linear(a, b), gen) for a, b in zip(widths[:-1], widths[1:])])
        self.out = self._init_linear(nn.Linear(sizes[-1], 2), gen, gain=0.1)

    def init_state(self, param: Tensor) -> State:
        zeros = param.new_zeros((len(MOMENTUM_DECAYS), *param.shape))
        return {"m": zeros, "v": param.new_zeros((len(RMS_DECAYS), *param.shape))}

    def forward(self, param: Tensor, grad: Tensor, state: State, step: Tensor) -> tuple[Tensor, State]:
        g = clamp_grad(grad)
        shape = (-1,) + (1,) * param.dim()
        b1 = torch.tensor(MOMENTUM_DECAYS, dtype=g.dtype, device=g.device).reshape(shape)
        b2 = torch.tensor(RMS_DECAYS, dtype=g.dtype, device=g.device).reshape(shape)
        m = b1 * state["m"] + (1 - b1) * g
        v = b2 * state["v"] + (1 - b2) * g.square()
        # Bias-corrected second moments make the normalised momenta meaningful from the first step.
        v_hat = v / (1 - b2**step)
        rsqrt = (v_hat + _EPS).rsqrt()
        feats = [g, param, *m, *(m * rsqrt[-1]), *(v_hat + _EPS).sqrt(), *(g * rsqrt)]
        x = torch.stack([f / (f.square().mean() + _EPS).sqrt() for f in feats], -1)
        t = progress_features(step).expand(*param.shape, len(TIMESCALES))
        h = torch.cat([x, t], -1)
        for layer in self.hidden:
            h = torch.relu(layer(h))
        out = self.out(h)
        direction, log_mag = out[..., 0], out[..., 1]
        update = self.step_mult * direction * torch.exp(self.exp_mult * log_mag)
        return param - update, {"m": m, "v": v}

    def _config_kwargs(self) -> dict[str, Any]:
        return {
            "hidden_sizes": self.hidden_sizes,
            "step_mult": self.step_mult,
            "exp_mult": self.exp_mult,
            **super()._config_kwargs(),
        }
