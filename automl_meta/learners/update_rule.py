"""What every learned optimizer shares: an update rule as a pure function of one parameter tensor.

A learned optimizer is an :class:`UpdateRule`: a small network whose weights are
the meta-parameters, applied to each parameter tensor of the model being trained
(the *optimizee*) coordinate-wise or per tensor, so one rule serves models of any
shape. The rule is a pure function

``new_param, new_state = rule(param, grad, state, step)``

of one tensor, its gradient, its optimizer state (a dict of tensors made by
:meth:`UpdateRule.init_state`) and the 1-based step number. The engine maps it
over a parameter dictionary and vmaps it over a batch of tasks for
meta-training (:mod:`automl_meta.engine.learned_update`);
:class:`automl_meta.optim.LearnedOptimizer` applies it to a PyTorch model.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .._validation import check_seed

State = dict[str, Tensor]

# Time scales of the training-progress features tanh(step / tau): they need no knowledge of the
# horizon, so a rule meta-trained on short runs sees meaningful (saturating) features on long ones.
TIMESCALES = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)


def progress_features(step: Tensor) -> Tensor:
    """``tanh(step / tau)`` for each time scale in :data:`TIMESCALES` (a 1-D tensor)."""
    scales = torch.tensor(TIMESCALES, dtype=step.dtype, device=step.device)
    return torch.tanh(step / scales)


def grad_limit(dtype: torch.dtype) -> float:
    """Gradients are clamped to +-this before use: their squares (second moments) stay finite."""
    return torch.finfo(dtype).max ** 0.5 / 1e4


def clamp_grad(g: Tensor) -> Tensor:
    """``g`` clamped to :func:`grad_limit` (finite gradients only; NaN/inf are refused upstream)."""
    lim = grad_limit(g.dtype)
    return g.clamp(-lim, lim)


def rms(x: Tensor, eps: float = 0.0) -> Tensor:
    """Root mean square over all entries (a 0-dim tensor)."""
    return (x.square().mean() + eps).sqrt()


class UpdateRule(nn.Module):
    """Base class of the learned optimizers (meta-learns the update rule's weights).

    Subclasses implement :meth:`init_state` and :meth:`forward` for one tensor,
    without Python control flow on tensor values, so that the rule runs under
    :func:`torch.vmap` and :func:`torch.func.functional_call`.

    Parameters
    ----------
    seed : int
        Fixes the initial weights of the rule's network.
    """

    name: ClassVar[str] = "update_rule"
    meta_learns: ClassVar[tuple[str, ...]] = ("update_rule",)
    #: Whether :meth:`foreach_step_` is implemented: updates in place whose size is bounded for finite
    #: inputs, so an optimizer may write them without checking the results first.
    in_place: ClassVar[bool] = False
    #: Settings (config key -> its value where a config leaves it out) under which the rule's state means
    #: the same whatever their value: an optimizer state saved under another value may go on under this
    #: rule's (a bound on an output, say), where any other difference of settings refuses it.
    resumable_settings: ClassVar[dict[str, Any]] = {}
    task_type = None  # learned optimizers are not tied to classification or regression

    def __init__(self, *, seed: int = 0) -> None:
        super().__init__()
        self.seed = check_seed(seed)

    @property
    def is_setup(self) -> bool:
        return True

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def _init_linear(self, layer: nn.Linear, gen: torch.Generator, gain: float = 1.0) -> nn.Linear:
        bound = gain / layer.in_features**0.5
        with torch.no_grad():
            layer.weight.uniform_(-bound, bound, generator=gen)
            if layer.bias is not None:
                layer.bias.zero_()
        return layer

    def init_state(self, param: Tensor) -> State:
        """The optimizer state of a fresh parameter tensor (a dict of tensors)."""
        raise NotImplementedError

    def forward(self, param: Tensor, grad: Tensor, state: State, step: Tensor) -> tuple[Tensor, State]:
        """One update of one tensor: ``(new_param, new_state)``; ``step`` counts from 1."""
        raise NotImplementedError

    def foreach_step(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        steps: list[float],
        grad_norms: list[Tensor] | None = None,
        workspace: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[Tensor], list[State]]:
        """:meth:`forward` for several tensors of one dtype and device at once.

        Parameters
        ----------
        params, grads : list of Tensor
            The tensors and their finite gradients, already clamped to :func:`grad_limit`.
        states : list of dict
            Each tensor's state.
        steps : list of float
            Each tensor's step number (counting from 1), as a Python number: the caller keeps the
            counts on the host, so a step needs no transfer to learn them.
        grad_norms : list of 0-dim Tensor, optional
            The gradients' L2 norms, when already known.
        workspace : list of dict, optional
            One dict per tensor, kept by the caller from call to call: the rule may store buffers
            there and write its outputs into them. A buffer returned as new state is replaced by
            the retired state tensor once the caller commits the step, so it must alias nothing live.

        Returns
        -------
        new_params : list of Tensor
        new_states : list of dict
        """
        outs = [
            self(p, g, s, torch.tensor(t, dtype=p.dtype, device=p.device))
            for p, g, s, t in zip(params, grads, states, steps)
        ]
        return [o[0] for o in outs], [o[1] for o in outs]

    def foreach_step_(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        steps: list[float],
        grad_norms: list[Tensor] | None = None,
        scales: list[float] | None = None,
        workspace: list[dict[str, Any]] | None = None,
    ) -> None:
        """:meth:`foreach_step` in place, for rules with :attr:`in_place`: ``params`` and the tensors of
        ``states`` are overwritten, and each tensor's change is multiplied by its entry of ``scales``.
        ``workspace`` is as for :meth:`foreach_step`: one dict per tensor that the caller keeps.

        Implementations bound every entry's change for finite parameters and clamped gradients (saying
        how, in their docstring), so that a finite float32 or float64 parameter stays finite.
        """
        raise NotImplementedError(f"The {self.name!r} rule has no in-place step; use foreach_step.")

    # -- configuration ------------------------------------------------------------------------------
    def _config_kwargs(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def get_config(self) -> dict[str, Any]:
        """Everything :meth:`from_config` needs to rebuild this rule (JSON-serialisable)."""
        return {"name": self.name, **self._config_kwargs()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> UpdateRule:
        """Rebuild a rule from :meth:`get_config` (weights at their initial values)."""
        config = {k: v for k, v in config.items() if k not in ("name", "task_type")}
        return cls(**config)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._config_kwargs().items())
