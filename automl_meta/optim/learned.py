"""LearnedOptimizer: a meta-trained update rule behind the ``torch.optim.Optimizer`` interface."""

from __future__ import annotations

import copy
import math
import os
from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from ..artifacts import MetaArtifact, load
from ..artifacts.tensorfile import tensors_sha256
from ..learners import UpdateRule

DEFAULT_ARTIFACT = "default-l2o"


def _resolve_rule(artifact: str | os.PathLike | MetaArtifact | UpdateRule) -> tuple[UpdateRule, str]:
    if isinstance(artifact, UpdateRule):
        return artifact, f"<{artifact.name} rule>"
    source = artifact if isinstance(artifact, MetaArtifact) else load(artifact)
    if not isinstance(source.learner, UpdateRule):
        raise ValueError(f"The artifact {artifact!r} holds a {source.learner.name!r} learner, not a learned "
                         "optimizer; pass a learned-optimizer artifact such as 'default-l2o'.")
    return source.learner, str(artifact) if not isinstance(artifact, MetaArtifact) else "<MetaArtifact>"


def _all_finite(t: Tensor) -> bool:
    # A sum is one cheap pass and is finite whenever every entry is (it may overflow, hence the exact check).
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


class LearnedOptimizer(torch.optim.Optimizer):
    """A meta-trained update rule used as a ``torch.optim.Optimizer``.

    Drop-in for ``torch.optim.Adam``: parameter groups, ``zero_grad``,
    ``step(closure)``, ``state_dict`` / ``load_state_dict``, learning-rate
    schedulers and skorch's ``optimizer=`` argument all work as usual. The
    update of each parameter tensor comes from the artifact's learned rule
    (see :mod:`automl_meta.learners`); its per-parameter state (moments,
    hidden states, step count) lives in ``optimizer.state`` like Adam's.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters to optimize, or parameter groups (dicts with ``"params"``
        and optionally ``"lr"``).
    artifact : str, path, MetaArtifact or UpdateRule, default="default-l2o"
        The learned optimizer: a bundled name, an ``.ameta`` file, a loaded
        artifact, or an update rule.
    lr : float, default=1.0
        Multiplies the learned update (1.0 applies it as meta-trained). Per
        group, so learning-rate schedulers and per-group settings work. Note that
        skorch passes its own ``lr`` (default 0.01) to the optimizer: give
        skorch ``lr=1.0`` to use the learned update unscaled.

    Raises
    ------
    FloatingPointError
        From :meth:`step`, when a gradient holds NaN or inf (the model is left
        unchanged), or when the learned update would make a parameter non-finite.

    Notes
    -----
    Finite gradients of any size are accepted: entries beyond about 1e15
    (float32) are clamped before use, so second-moment statistics stay finite.

    Examples
    --------
    >>> import torch
    >>> from automl_meta.optim import LearnedOptimizer
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    >>> X, y = torch.randn(64, 4), torch.randn(64, 1)
    >>> opt = LearnedOptimizer(model.parameters())
    >>> first = None
    >>> for _ in range(50):
    ...     opt.zero_grad()
    ...     loss = torch.nn.functional.mse_loss(model(X), y)
    ...     first = loss.item() if first is None else first
    ...     loss.backward()
    ...     opt.step()
    >>> loss.item() < first
    True
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]],
                 artifact: str | os.PathLike | MetaArtifact | UpdateRule = DEFAULT_ARTIFACT, *,
                 lr: float = 1.0) -> None:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (0 <= lr < math.inf):
            raise ValueError(f"lr must be a finite number >= 0 (1.0 applies the learned update as is), got {lr!r}.")
        rule, source = _resolve_rule(artifact)
        self.rule = rule.eval().requires_grad_(False)
        self.artifact_source = source
        self._rules: dict[tuple[torch.dtype, torch.device], UpdateRule] = {}
        super().__init__(params, {"lr": float(lr)})

    def _rule_for(self, p: Tensor) -> UpdateRule:
        key = (p.dtype, p.device)
        if key not in self._rules:
            self._rules[key] = copy.deepcopy(self.rule).to(device=p.device, dtype=p.dtype)
        return self._rules[key]

    def _rule_record(self) -> dict[str, Any]:
        return {"config": self.rule.get_config(), "sha256": tensors_sha256(self.rule.state_dict())}

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Update every parameter that has a gradient; return the closure's loss, if a closure is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = []
        for gi, group in enumerate(self.param_groups):
            for pi, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LearnedOptimizer does not support sparse gradients.")
                if not _all_finite(p.grad):
                    raise FloatingPointError(
                        f"The gradient of parameter {pi} in group {gi} (shape {tuple(p.shape)}) contains NaN or "
                        "inf, so no parameter was updated. Check the loss for overflow (e.g. log of 0), lower the "
                        "input scale, or clip gradients with torch.nn.utils.clip_grad_norm_ before step().")
                work.append((gi, pi, group["lr"], p))
        results = []
        for gi, pi, lr, p in work:
            state = self.state[p]
            if not state:
                state.update(self._rule_for(p).init_state(p.detach()))
                state["step"] = torch.zeros((), dtype=p.dtype, device=p.device)
            step = state["step"] + 1
            rule_state = {k: v for k, v in state.items() if k != "step"}
            new_p, new_state = self._rule_for(p)(p.detach(), p.grad, rule_state, step)
            if lr != 1.0:
                new_p = p + lr * (new_p - p)
            if not _all_finite(new_p):
                raise FloatingPointError(
                    f"The learned update of parameter {pi} in group {gi} is not finite, so no parameter was "
                    "updated. The parameters or gradients are far outside the range the optimizer was trained "
                    "on; rescale the inputs or the loss.")
            results.append((p, state, step, new_p, new_state))
        for p, state, step, new_p, new_state in results:  # all checked first: all or nothing
            p.copy_(new_p)
            state.update(new_state)
            state["step"] = step
        return loss

    def state_dict(self) -> dict[str, Any]:
        """Like ``torch.optim.Optimizer.state_dict``, plus a record of the learned rule it belongs to."""
        return {**super().state_dict(), "update_rule": self._rule_record()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore state saved by :meth:`state_dict`; refused when it was made with another learned rule."""
        state_dict = dict(state_dict)
        record = state_dict.pop("update_rule", None)
        if record is not None and record != self._rule_record():
            raise ValueError("This optimizer state was saved with a different learned optimizer "
                             f"({record.get('config', {}).get('name')!r}, other weights); create the "
                             "LearnedOptimizer with the same artifact before loading it.")
        super().load_state_dict(state_dict)

    def __repr__(self) -> str:
        groups = ", ".join(f"group {i}: {len(g['params'])} tensors, lr={g['lr']}"
                           for i, g in enumerate(self.param_groups))
        return f"LearnedOptimizer({self.rule.name} from {self.artifact_source}; {groups})"
