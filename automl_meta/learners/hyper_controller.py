"""A learned hyperparameter controller: an LSTM that sets SGD-momentum's or Adam's rates, per tensor."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .._validation import check_nonnegative_float, check_positive_float, check_positive_int
from ._many_tensors import ADAM_BETA2, EPS, SETTLED, features, host_rates, remember_rates, update_, update_into
from .update_rule import TIMESCALES, State, UpdateRule, clamp_grad, progress_features, rms

BASES = ("adam", "sgd")
# Learning-rate ranges of the controller's output, (min, max, initial), per base optimizer.
LR_RANGES = {"adam": (1e-5, 0.03, 3e-3), "sgd": (1e-5, 1.0, 1e-2)}
MAX_MOMENTUM = 0.99  # the default upper bound of the controller's momentum
# With a hypergradient gain, the controller's learning-rate output is a factor within [1/span, span]
# of the tensor's hypergradient-adapted rate.
HYPERGRADIENT_SPAN = 4.0


def _corrected(beta: Tensor, step: Tensor) -> Tensor:
    """Adam's bias-corrected weight of the gradient in a moment of decay ``beta`` at ``step`` (``step`` > 1),
    as :func:`._many_tensors.moment_weight` gives it."""
    rest = beta**step
    return torch.where(rest < SETTLED, 1 - beta, (1 - beta) / (1 - rest).clamp_min(SETTLED))


def _logit(u: float) -> float:
    return math.log(u / (1 - u))


class HyperController(UpdateRule):
    """An LSTM that drives a standard optimizer's learning rate, momentum and weight decay, per tensor.

    Each step, for every parameter tensor, a small LSTM (shared by all tensors)
    reads statistics of the tensor's gradient and state and sets that tensor's
    hyperparameters through sigmoids of its hidden state:

    ``u_t = sigmoid(W h_t + b)``, learning rate
    ``alpha_t = lr_min * (lr_max / lr_min) ** u_t[0]``, momentum
    ``beta_t = max_momentum * u_t[1]`` and decoupled weight decay ``lambda_t = wd_max * u_t[2]``.

    The update itself stays the base optimizer's: for ``base="adam"``,
    ``theta <- theta - alpha_t * (m_t / (sqrt(v_t) + eps) + lambda_t * theta)``
    with ``m_t`` the ``beta_t``-momentum of the gradient and ``v_t`` its
    second moment (decay 0.999); for ``base="sgd"``,
    ``theta <- theta - alpha_t * (b_t + lambda_t * theta)`` with
    ``b_t = beta_t * b_{t-1} + g_t``. The learning rate ranges over
    ``[lr_min, lr_max] = [1e-5, 0.03]`` for Adam and ``[1e-5, 1]`` for SGD
    (:data:`LR_RANGES`), so every coordinate's Adam step is at most a few
    hundredths, whatever the controller does.

    The controller's inputs per tensor are scale-free where possible: the
    cosine between the gradient and the momentum (positive while progress is
    steady, negative when steps overshoot), the log-ratio of the gradient's
    size to its recent average, the gradient's and parameter's log-size, the
    previous learning-rate setting, the tensor's log-size and whether it is a
    bias/vector, and training-progress features ``tanh(step / tau)``.

    Meta-learns: ``update_rule`` (the controller's LSTM and output weights).

    Parameters
    ----------
    base : {"adam", "sgd"}, default="adam"
    hidden_size : int, default=20
    wd_max : float, default=0.01
        Largest weight decay the controller can set.
    max_momentum : float, default=0.99
        Largest momentum the controller can set, in (0, 1). The controller of ``default-l2o``, meta-trained
        with 0.99, settles at about 0.97 on long mini-batch runs; it ships with 0.92, which brings that to
        about Adam's 0.9 and leaves its other outputs as learned. The untrained controller starts at 0.9
        (just below ``max_momentum`` when that is 0.9 or less).
    interval : int, default=1
        The controller runs on steps 1, 1 + interval, 1 + 2 interval, ...; the steps in between keep its
        last learning rate, momentum and weight decay and cost what the base optimizer's step costs
        (features, LSTM and head are skipped). Its state then also holds those two rates ("beta",
        "wd"). A rule is meta-trained with the interval it is used with.
    hypergradient : float, default=0.0
        With a positive gain ``kappa``, each tensor's learning rate is
        ``exp(ell_t) * 4 ** (2 u_t[0] - 1)`` (clipped to ``[lr_min, lr_max]``): the controller sets a
        factor within [1/4, 4] of a rate ``exp(ell_t)`` that follows the hypergradient at every controller
        call, ``ell <- ell + kappa * cos(g_t, m_{t-1})`` (Baydin et al., 2018, normalized and
        multiplicative). The rate rises while gradients keep the momentum's direction (steps too short)
        and falls while they turn against it (steps overshoot), so it can travel
        far from its start over thousands of steps, which a controller meta-trained on short runs does
        not learn. 0 leaves the learning rate to the controller alone.
    bias_correction : bool, default=False
        For ``base="adam"``: Adam's bias-corrected moments, whose gradient weights are
        ``(1 - beta) / (1 - beta**t)`` at step ``t`` (at the controller's current momentum), so that ``m_t``
        and ``v_t`` average all the gradients so far until about ``1 / (1 - beta)`` steps. Without it the
        moments start at the first gradient and then decay at ``beta``: the first gradient, often the
        largest of a run, keeps most of the weight in ``v_t`` for hundreds of steps (0.9 of it after 100
        steps), and the steps are smaller than Adam's at the same rate. A rule is meta-trained with the
        setting it is used with; configurations saved before it existed load with ``False``.
    seed : int, default=0

    Examples
    --------
    >>> import torch
    >>> from automl_meta.learners import HyperController
    >>> rule = HyperController(base="adam").requires_grad_(False)  # no meta-gradients needed here
    >>> p = torch.ones(5)
    >>> new_p, state = rule(p, torch.ones(5), rule.init_state(p), torch.tensor(1.0))
    >>> round(float(state["lr"]), 4)  # the untrained controller starts near 3e-3
    0.003
    """

    name: ClassVar[str] = "hyper_controller"
    in_place: ClassVar[bool] = True
    # The bound scales the momentum the controller sets; m and v mean what they meant under another bound.
    resumable_settings: ClassVar[dict[str, Any]] = {"max_momentum": MAX_MOMENTUM}
    n_features = 7 + len(TIMESCALES)

    def __init__(
        self,
        *,
        base: str = "adam",
        hidden_size: int = 20,
        wd_max: float = 0.01,
        max_momentum: float = MAX_MOMENTUM,
        interval: int = 1,
        hypergradient: float = 0.0,
        bias_correction: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(seed=seed)
        if base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {base!r}.")
        self.base = base
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.wd_max = check_positive_float(wd_max, "wd_max")
        self.max_momentum = check_positive_float(max_momentum, "max_momentum")
        if self.max_momentum >= 1:  # a momentum of 1 would never take in another gradient
            raise ValueError(f"max_momentum must be below 1, got {max_momentum!r}.")
        self.interval = check_positive_int(interval, "interval")
        self.hypergradient = check_nonnegative_float(hypergradient, "hypergradient")
        self.bias_correction = bool(bias_correction)
        gen, h = self._generator(), self.hidden_size
        self.input_map = self._init_linear(nn.Linear(self.n_features, 4 * h), gen)
        self.hidden_map = self._init_linear(nn.Linear(h, 4 * h, bias=False), gen)
        self.head = self._init_linear(nn.Linear(h, 3), gen, gain=0.1)
        lr_min, lr_max, lr_init = LR_RANGES[base]
        with torch.no_grad():
            self.input_map.bias[h : 2 * h] = 1.0  # forget gates start open
            # The first rate is lr_init: directly, or as a factor of 1 (u = 0.5) of the hypergradient's rate.
            u_lr = 0.5 if self.hypergradient else math.log(lr_init / lr_min) / math.log(lr_max / lr_min)
            u_beta = min(0.9 / self.max_momentum, 0.99)  # Adam's 0.9 where the bound allows it
            self.head.bias.copy_(torch.tensor([_logit(u_lr), _logit(u_beta), -8.0]))

    def init_state(self, param: Tensor) -> State:
        h = param.new_zeros(self.hidden_size)
        scalar = param.new_zeros(())
        moments = (
            {"m": torch.zeros_like(param), "v": torch.zeros_like(param)}
            if self.base == "adam"
            else {"m": torch.zeros_like(param)}
        )
        state = {**moments, "h": h, "c": h.clone(), "u_lr": scalar, "log_g_avg": scalar.clone(), "lr": scalar.clone()}
        if self.interval > 1:  # the rates the steps between controller calls reuse
            state.update(beta=scalar.clone(), wd=scalar.clone())
        if self.hypergradient:
            state["log_lr"] = torch.full_like(scalar, math.log(LR_RANGES[self.base][2]))
        return state

    def _features(self, param: Tensor, g: Tensor, state: State, step: Tensor) -> tuple[Tensor, Tensor]:
        first = step <= 1
        g_rms = rms(g)
        m = state["m"]
        cos = (g * m).sum() / (g_rms * rms(m) * g.numel() + EPS)
        log_g = torch.log10(g_rms + 1e-16)
        trend = torch.where(first, torch.zeros_like(log_g), (log_g - state["log_g_avg"]).clamp(-5, 5))
        numel = torch.tensor(math.log10(param.numel()) / 6, dtype=g.dtype, device=g.device)
        is_vector = torch.tensor(float(param.dim() <= 1), dtype=g.dtype, device=g.device)
        scalars = torch.stack(
            [cos, trend, log_g / 5, torch.log10(rms(param) + 1e-8) / 3, state["u_lr"], numel, is_vector]
        )
        return torch.cat([scalars, progress_features(step)]), log_g

    def _controller(
        self, x: Tensor, h: Tensor, c: Tensor, log_lr: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The LSTM cell and head on features ``x`` (any leading axes): ``(h, c, u, lr)``; ``log_lr`` is
        the hypergradient's log-rate when there is one."""
        gates = self.input_map(x) + self.hidden_map(h)
        i, f, cand, o = gates.chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(cand)
        h = torch.sigmoid(o) * torch.tanh(c)
        u = torch.sigmoid(self.head(h))  # alpha_t = sigmoid(W h_t + b), mapped to each hyperparameter's range
        lr_min, lr_max, _ = LR_RANGES[self.base]
        if log_lr is None:
            return h, c, u, lr_min * (lr_max / lr_min) ** u[..., 0]
        factor = math.log(HYPERGRADIENT_SPAN) * (2 * u[..., 0] - 1)
        return h, c, u, (log_lr + factor).exp().clamp(lr_min, lr_max)

    def _next_log_lr(self, log_lr: Tensor, cos: Tensor, first: Tensor) -> Tensor:
        """The hypergradient step of the log-rate, ``ell + kappa cos(g_t, m_{t-1})`` within the rate's range
        (none on the first step, which has no momentum yet)."""
        lr_min, lr_max, _ = LR_RANGES[self.base]
        moved = (log_lr + self.hypergradient * cos).clamp(math.log(lr_min), math.log(lr_max))
        return torch.where(first, log_lr, moved)

    def forward(self, param: Tensor, grad: Tensor, state: State, step: Tensor) -> tuple[Tensor, State]:
        g = clamp_grad(grad)
        x, log_g = self._features(param, g, state, step)
        first = step <= 1
        log_lr = self._next_log_lr(state["log_lr"], x[0], first) if self.hypergradient else None
        h, c, u, lr = self._controller(x, state["h"], state["c"], log_lr)
        rates = {
            "h": h,
            "c": c,
            "u_lr": u[0],
            "log_g_avg": torch.where(first, log_g, 0.9 * state["log_g_avg"] + 0.1 * log_g),
            "lr": lr,
        }
        if log_lr is not None:
            rates["log_lr"] = log_lr
        beta = self.max_momentum * u[1]
        wd = self.wd_max * u[2]
        if self.interval > 1:  # between calls, the controller's outputs and state stay as they were
            call = torch.remainder(step - 1, self.interval) == 0
            rates.update(beta=beta, wd=wd)
            rates = {k: torch.where(call, v, state[k]) for k, v in rates.items()}
            beta, wd, lr = rates["beta"], rates["wd"], rates["lr"]
        if self.base == "adam":
            # Started at the first gradient (weight 1 on it), then weight 1 - beta, or Adam's bias-corrected one.
            if self.bias_correction:
                wm, wv = _corrected(beta, step), _corrected(torch.full_like(beta, ADAM_BETA2), step)
                m = torch.where(first, g, state["m"] + wm * (g - state["m"]))
                v = torch.where(first, g.square(), state["v"] + wv * (g.square() - state["v"]))
            else:
                m = torch.where(first, g, beta * state["m"] + (1 - beta) * g)
                v = torch.where(first, g.square(), ADAM_BETA2 * state["v"] + (1 - ADAM_BETA2) * g.square())
            direction = m / (v.sqrt() + EPS)
            moments = {"m": m, "v": v}
        else:
            m = beta * state["m"] + g
            direction = m
            moments = {"m": m}
        new_param = param - lr * (direction + wd * param)
        return new_param, {**moments, **rates}

    def foreach_step(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        steps: list[float],
        grad_norms: list[Tensor] | None = None,
        workspace: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[Tensor], list[State]]:
        """:meth:`forward` for several tensors at once: one controller call, ``torch._foreach_*`` updates.

        See :meth:`UpdateRule.foreach_step`.
        """
        if self._due(steps):
            rates = self._foreach_rates(params, grads, states, steps, grad_norms)
        else:
            rates = {k: torch.stack([s[k] for s in states]) for k in self._rate_keys()}
        lr, beta, wd = torch.stack([rates["lr"], rates["beta"], rates["wd"]]).tolist()
        ws = workspace if workspace is not None else [{} for _ in params]
        new_params, moments = update_into(
            self.base, params, grads, states, steps, (lr, beta, wd), ws, self.bias_correction
        )
        per_tensor: dict[str, Any] = dict(moments)
        per_tensor.update((k, rates[k].unbind()) for k in self._rate_keys())
        return new_params, [dict(zip(per_tensor, row)) for row in zip(*per_tensor.values())]

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
        """:meth:`foreach_step` in place: ``params`` and the tensors of ``states`` are overwritten.

        See :meth:`UpdateRule.foreach_step_`. For finite parameters and gradients clamped to
        :func:`grad_limit`, an Adam-based entry moves by at most ``lr_max * scale / sqrt(1 - 0.999)``
        (about ``scale``), an SGD-based one by at most ``scale * grad_limit / (1 - 0.99)``. The
        workspace keeps each tensor's rates on the host for the steps between controller calls.
        """
        ws = workspace if workspace is not None else [{} for _ in params]
        if self._due(steps):
            rates = self._foreach_rates(params, grads, states, steps, grad_norms)
            for k in self._rate_keys():
                for state, value in zip(states, rates[k].unbind()):
                    state[k] = value
            lr, beta, wd = torch.stack([rates["lr"], rates["beta"], rates["wd"]]).tolist()
            remember_rates(states, ws, lr, beta, wd)
        else:  # between the controller's calls: its last rates
            lr, beta, wd = host_rates(states, ws)
        if scales is not None:
            lr = [r * c for r, c in zip(lr, scales)]
        update_(self.base, params, grads, states, steps, (lr, beta, wd), ws, self.bias_correction)

    def _rate_keys(self) -> tuple[str, ...]:
        keys: tuple[str, ...] = ("h", "c", "u_lr", "log_g_avg", "lr")
        keys += ("beta", "wd") if self.interval > 1 else ()
        return keys + ("log_lr",) if self.hypergradient else keys

    def _due(self, steps: list[float]) -> bool:
        """Whether any tensor is due for a controller call at these step numbers."""
        return self.interval == 1 or any((t - 1) % self.interval == 0 for t in steps)

    def _foreach_rates(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        steps: list[float],
        grad_norms: list[Tensor] | None,
    ) -> dict[str, Tensor]:
        """The controller's state and rates, one row per tensor: new for the tensors due for a call, the
        others' as they were."""
        x, log_g_avg = features(params, grads, states, steps, grad_norms)
        log_lr = None
        if self.hypergradient:
            first = torch.tensor([t <= 1 for t in steps], device=x.device)
            log_lr = self._next_log_lr(torch.stack([s["log_lr"] for s in states]), x[:, 0], first)
        h0, c0 = torch.stack([s[k] for k in ("h", "c") for s in states]).view(2, len(states), -1)
        h, c, u, lr = self._controller(x, h0, c0, log_lr)
        rates = {
            "h": h,
            "c": c,
            "u_lr": u[:, 0],
            "log_g_avg": log_g_avg,
            "lr": lr,
            "beta": self.max_momentum * u[:, 1],
            "wd": self.wd_max * u[:, 2],
        }
        if log_lr is not None:
            rates["log_lr"] = log_lr
        due = [self.interval == 1 or (t - 1) % self.interval == 0 for t in steps]
        if not all(due):  # tensors whose step counts fell behind the others' (no gradient on some step)
            call = torch.tensor(due, device=x.device)
            for k, v in rates.items():
                kept = torch.stack([s[k] for s in states])
                rates[k] = torch.where(call.view(-1, *[1] * (v.dim() - 1)), v, kept)
        return rates

    def _config_kwargs(self) -> dict[str, Any]:
        config: dict[str, Any] = {"base": self.base, "hidden_size": self.hidden_size, "wd_max": self.wd_max}
        if self.max_momentum != MAX_MOMENTUM:  # absent at the default: earlier rules' configs stay as they were
            config["max_momentum"] = self.max_momentum
        if self.interval > 1:  # likewise absent at 1
            config["interval"] = self.interval
        if self.hypergradient:  # likewise absent at 0
            config["hypergradient"] = self.hypergradient
        if self.bias_correction:  # likewise absent when off: rules meta-trained before it load uncorrected
            config["bias_correction"] = True
        return {**config, **super()._config_kwargs()}
