"""A learned hyperparameter controller: an LSTM that sets SGD-momentum's or Adam's rates, per tensor."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .._validation import check_positive_float, check_positive_int
from .update_rule import TIMESCALES, State, UpdateRule, clamp_grad, progress_features, rms

BASES = ("adam", "sgd")
# Learning-rate ranges of the controller's output, (min, max, initial), per base optimizer.
LR_RANGES = {"adam": (1e-5, 0.03, 3e-3), "sgd": (1e-5, 1.0, 1e-2)}
MOMENTUM_RANGE = (0.0, 0.99)
ADAM_BETA2 = 0.999
_EPS = 1e-8


def _logit(u: float) -> float:
    return math.log(u / (1 - u))


def _buffer(space: dict[str, Tensor], key: str, like: Tensor) -> Tensor:
    """``space[key]`` if it fits ``like`` (and is not ``like`` itself), else a new one stored there."""
    buf = space.get(key)
    if (
        buf is None
        or buf.shape != like.shape
        or buf.dtype != like.dtype
        or buf.device != like.device
        or buf.data_ptr() == like.data_ptr()
    ):
        buf = space[key] = torch.empty_like(like)
    return buf


class HyperController(UpdateRule):
    """An LSTM that drives a standard optimizer's learning rate, momentum and weight decay, per tensor.

    Each step, for every parameter tensor, a small LSTM (shared by all tensors)
    reads statistics of the tensor's gradient and state and sets that tensor's
    hyperparameters through sigmoids of its hidden state:

    ``u_t = sigmoid(W h_t + b)``, learning rate
    ``alpha_t = lr_min * (lr_max / lr_min) ** u_t[0]``, momentum
    ``beta_t = 0.99 * u_t[1]`` and decoupled weight decay ``lambda_t = wd_max * u_t[2]``.

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
    n_features = 7 + len(TIMESCALES)

    def __init__(self, *, base: str = "adam", hidden_size: int = 20, wd_max: float = 0.01, seed: int = 0) -> None:
        super().__init__(seed=seed)
        if base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {base!r}.")
        self.base = base
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.wd_max = check_positive_float(wd_max, "wd_max")
        gen, h = self._generator(), self.hidden_size
        self.input_map = self._init_linear(nn.Linear(self.n_features, 4 * h), gen)
        self.hidden_map = self._init_linear(nn.Linear(h, 4 * h, bias=False), gen)
        self.head = self._init_linear(nn.Linear(h, 3), gen, gain=0.1)
        lr_min, lr_max, lr_init = LR_RANGES[base]
        with torch.no_grad():
            self.input_map.bias[h : 2 * h] = 1.0  # forget gates start open
            u_lr = math.log(lr_init / lr_min) / math.log(lr_max / lr_min)
            self.head.bias.copy_(torch.tensor([_logit(u_lr), _logit(0.9 / MOMENTUM_RANGE[1]), -8.0]))

    def init_state(self, param: Tensor) -> State:
        h = param.new_zeros(self.hidden_size)
        scalar = param.new_zeros(())
        moments = (
            {"m": torch.zeros_like(param), "v": torch.zeros_like(param)}
            if self.base == "adam"
            else {"m": torch.zeros_like(param)}
        )
        return {**moments, "h": h, "c": h.clone(), "u_lr": scalar, "log_g_avg": scalar.clone(), "lr": scalar.clone()}

    def _features(self, param: Tensor, g: Tensor, state: State, step: Tensor) -> tuple[Tensor, Tensor]:
        first = step <= 1
        g_rms = rms(g)
        m = state["m"]
        cos = (g * m).sum() / (g_rms * rms(m) * g.numel() + _EPS)
        log_g = torch.log10(g_rms + 1e-16)
        trend = torch.where(first, torch.zeros_like(log_g), (log_g - state["log_g_avg"]).clamp(-5, 5))
        numel = torch.tensor(math.log10(param.numel()) / 6, dtype=g.dtype, device=g.device)
        is_vector = torch.tensor(float(param.dim() <= 1), dtype=g.dtype, device=g.device)
        scalars = torch.stack(
            [cos, trend, log_g / 5, torch.log10(rms(param) + 1e-8) / 3, state["u_lr"], numel, is_vector]
        )
        return torch.cat([scalars, progress_features(step)]), log_g

    def _controller(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The LSTM cell and head on features ``x`` (any leading axes): ``(h, c, u, lr)``."""
        gates = self.input_map(x) + self.hidden_map(h)
        i, f, cand, o = gates.chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(cand)
        h = torch.sigmoid(o) * torch.tanh(c)
        u = torch.sigmoid(self.head(h))  # alpha_t = sigmoid(W h_t + b), mapped to each hyperparameter's range
        lr_min, lr_max, _ = LR_RANGES[self.base]
        return h, c, u, lr_min * (lr_max / lr_min) ** u[..., 0]

    def forward(self, param: Tensor, grad: Tensor, state: State, step: Tensor) -> tuple[Tensor, State]:
        g = clamp_grad(grad)
        x, log_g = self._features(param, g, state, step)
        h, c, u, lr = self._controller(x, state["h"], state["c"])
        beta = MOMENTUM_RANGE[0] + (MOMENTUM_RANGE[1] - MOMENTUM_RANGE[0]) * u[1]
        wd = self.wd_max * u[2]
        first = step <= 1
        if self.base == "adam":
            # Started at the first gradient (instead of zero plus bias correction): exact for any beta_t.
            m = torch.where(first, g, beta * state["m"] + (1 - beta) * g)
            v = torch.where(first, g.square(), ADAM_BETA2 * state["v"] + (1 - ADAM_BETA2) * g.square())
            direction = m / (v.sqrt() + _EPS)
            moments = {"m": m, "v": v}
        else:
            m = beta * state["m"] + g
            direction = m
            moments = {"m": m}
        new_param = param - lr * (direction + wd * param)
        log_g_avg = torch.where(first, log_g, 0.9 * state["log_g_avg"] + 0.1 * log_g)
        return new_param, {**moments, "h": h, "c": c, "u_lr": u[0], "log_g_avg": log_g_avg, "lr": lr}

    def foreach_step(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        steps: list[Tensor],
        grad_norms: list[Tensor] | None = None,
        workspace: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[Tensor], list[State]]:
        """:meth:`forward` for several tensors at once: one controller call, ``torch._foreach_*`` updates.

        See :meth:`UpdateRule.foreach_step`.
        """
        step = torch.stack(steps)
        first = step <= 1
        x, log_g = self._foreach_features(params, grads, states, step, grad_norms)
        h, c, u, lr = self._controller(x, torch.stack([s["h"] for s in states]), torch.stack([s["c"] for s in states]))
        ws = workspace if workspace is not None else [{} for _ in params]
        new_params, moments = self._foreach_update(params, grads, states, first, u, lr, ws)
        log_g_avg = torch.where(first, log_g, 0.9 * torch.stack([s["log_g_avg"] for s in states]) + 0.1 * log_g)
        per_tensor: dict[str, Any] = dict(moments)
        per_tensor.update(
            h=h.unbind(), c=c.unbind(), u_lr=u[:, 0].unbind(), log_g_avg=log_g_avg.unbind(), lr=lr.unbind()
        )
        return new_params, [dict(zip(per_tensor, row)) for row in zip(*per_tensor.values())]

    def _foreach_features(
        self, params: list[Tensor], g: list[Tensor], states: list[State], step: Tensor, g_norms: list[Tensor] | None
    ) -> tuple[Tensor, Tensor]:
        """:meth:`_features` of every tensor, one row each, from foreach norms and one dot product per tensor."""
        n = torch.tensor([float(p.numel()) for p in params], dtype=step.dtype, device=step.device)
        root_n = n.sqrt()
        m = [s["m"] for s in states]
        g_rms = torch.stack(torch._foreach_norm(g) if g_norms is None else g_norms) / root_n
        m_rms = torch.stack(torch._foreach_norm(m)) / root_n
        dot = torch.stack([torch.dot(a.reshape(-1), b.reshape(-1)) for a, b in zip(g, m)])
        cos = dot / (g_rms * m_rms * n + _EPS)
        log_g = torch.log10(g_rms + 1e-16)
        log_g_avg = torch.stack([s["log_g_avg"] for s in states])
        trend = torch.where(step <= 1, torch.zeros_like(log_g), (log_g - log_g_avg).clamp(-5, 5))
        p_rms = torch.stack(torch._foreach_norm(params)) / root_n
        shapes = [(math.log10(p.numel()) / 6, float(p.dim() <= 1)) for p in params]
        fixed = torch.tensor(shapes, dtype=step.dtype, device=step.device)
        u_lr = torch.stack([s["u_lr"] for s in states])
        scalars = torch.stack([cos, trend, log_g / 5, torch.log10(p_rms + 1e-8) / 3, u_lr], 1)
        scales = torch.tensor(TIMESCALES, dtype=step.dtype, device=step.device)
        return torch.cat([scalars, fixed, torch.tanh(step[:, None] / scales)], 1), log_g

    def _foreach_update(
        self,
        params: list[Tensor],
        g: list[Tensor],
        states: list[State],
        first: Tensor,
        u: Tensor,
        lr: Tensor,
        ws: list[dict[str, Tensor]],
    ) -> tuple[list[Tensor], dict[str, list[Tensor]]]:
        """Every tensor's new value and moments, from the controller's outputs ``u`` and ``lr``.

        ``param - lr * (direction + wd * param)`` is applied as ``param * (1 - lr * wd) - lr * direction``;
        the per-tensor rates come to the host once, as the scalars of the foreach ops. Results go to
        workspace buffers (``ws``): fresh allocations of large tensors cost page faults on every step.
        """
        beta = MOMENTUM_RANGE[0] + (MOMENTUM_RANGE[1] - MOMENTUM_RANGE[0]) * u[:, 1]
        keep, neg_lr = 1 - lr * (self.wd_max * u[:, 2]), -lr
        new_params = [_buffer(w, "param", x) for w, x in zip(ws, params)]
        m_old = [s["m"] for s in states]
        m = [_buffer(w, "m", t) for w, t in zip(ws, m_old)]
        if self.base == "sgd":
            beta_, keep_, neg_lr_ = torch.stack([beta, keep, neg_lr]).tolist()
            for i, x in enumerate(params):
                torch.mul(m_old[i], beta_[i], out=m[i])
                torch.mul(x, keep_[i], out=new_params[i])
            torch._foreach_add_(m, g)
            for i, new in enumerate(new_params):
                new.add_(m[i], alpha=neg_lr_[i])
            return new_params, {"m": m}
        # A fresh state's moments are zero: weight 1 on the gradient starts m at g and v at g**2, as forward does.
        one = torch.ones_like(beta)
        m_weight, v_decay, v_weight, keep_, neg_lr_ = torch.stack(
            [
                torch.where(first, one, 1 - beta),
                torch.where(first, 0.0, one * ADAM_BETA2),
                torch.where(first, one, one * (1 - ADAM_BETA2)),
                keep,
                neg_lr,
            ]
        ).tolist()
        v_old = [s["v"] for s in states]
        v, denom = [_buffer(w, "v", t) for w, t in zip(ws, v_old)], [_buffer(w, "denom", t) for w, t in zip(ws, v_old)]
        for i, x in enumerate(params):
            torch.lerp(m_old[i], g[i], m_weight[i], out=m[i])
            torch.mul(v_old[i], v_decay[i], out=v[i])
            torch.mul(x, keep_[i], out=new_params[i])
        torch._foreach_addcmul_(v, g, g, v_weight)
        for i, t in enumerate(v):
            torch.sqrt(t, out=denom[i])
        torch._foreach_add_(denom, _EPS)
        torch._foreach_addcdiv_(new_params, m, denom, neg_lr_)
        return new_params, {"m": m, "v": v}

    def _config_kwargs(self) -> dict[str, Any]:
        return {"base": self.base, "hidden_size": self.hidden_size, "wd_max": self.wd_max, **super()._config_kwargs()}
