"""LearnedOptimizer: a meta-trained update rule behind the ``torch.optim.Optimizer`` interface."""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any, TypeVar, cast, overload

import torch
from torch import Tensor

from .._validation import check_fraction, check_nonnegative_float, check_optional_int
from ..artifacts import MetaArtifact, load
from ..artifacts.tensorfile import tensors_sha256
from ..engine.cooldown import COOLDOWN, cooldown_scale
from ..learners import UpdateRule
from ._finite import Work, all_within, checked_grads, first_nonfinite, own_dtype
from ._step_counts import count_steps, host_step

DEFAULT_ARTIFACT = "default-l2o"
_T = TypeVar("_T")  # what step()'s closure returns
# Half-precision parameters are updated by the rule in float32 (their state is float32 too), as AMP users expect.
_HALF = (torch.float16, torch.bfloat16)
# Largest group lr for which an in-place rule writes its update straight into float32/float64 parameters: its
# change per entry stays far below the dtype's range (UpdateRule.foreach_step_), so it cannot make them
# non-finite. Larger scales go through the checked path, which refuses a non-finite result before writing.
_IN_PLACE_MAX_SCALE = 1e3


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in _HALF else dtype


def _resolve_rule(artifact: str | os.PathLike | MetaArtifact | UpdateRule) -> tuple[UpdateRule, str]:
    if isinstance(artifact, UpdateRule):
        return artifact, f"<{artifact.name} rule>"
    source = artifact if isinstance(artifact, MetaArtifact) else load(artifact)
    if not isinstance(source.learner, UpdateRule):
        raise ValueError(
            f"The artifact {artifact!r} holds a {source.learner.name!r} learner, not a learned "
            "optimizer; pass a learned-optimizer artifact such as 'default-l2o'."
        )
    return source.learner, str(artifact) if not isinstance(artifact, MetaArtifact) else "<MetaArtifact>"


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
    total_steps : int, optional
        The number of steps the run will take. Given it, the optimizer cools down: the learned update is
        scaled linearly to 0 over the last ``cooldown`` fraction of the steps, as the cool-down of a
        warmup-stable-decay schedule does for a constant learning rate. That lowers the final loss of a
        run held up by its mini-batch noise, and raises it where the loss is still falling fast at the
        end. Steps past ``total_steps`` keep the last step's scale (with a warning). None (the default)
        never cools down. Per group.
    cooldown : float, default=0.2
        The fraction of ``total_steps`` over which the update is scaled down, in [0, 1].

    Raises
    ------
    FloatingPointError
        From :meth:`step`, when a gradient holds NaN or inf (the model is left
        unchanged), or when the learned update would make a parameter non-finite.

    Notes
    -----
    Finite gradients of any size are accepted: entries beyond about 1e15
    (float32) are clamped before use, so second-moment statistics stay finite.

    float16 and bfloat16 parameters are updated in float32: the rule reads
    float32 copies of the parameter and gradient, keeps the parameter's state
    (moments, hidden states, step count) in float32, and the result is rounded
    to the parameter's dtype. Other dtypes are computed, and keep their state,
    in their own dtype. Parameters with no entries are skipped, as by
    ``torch.optim.Adam``.

    All tensors of one dtype and device are updated together (for the ``HyperController`` rule: one
    controller call and ``torch._foreach_*`` updates). A rule whose steps are bounded (the
    ``HyperController``) updates float32 and float64 parameters and their state in place, as
    ``torch.optim.Adam`` does, while each group's ``lr`` is at most 1000; otherwise the new values are
    computed aside and checked before any is written, and the rule may reuse buffers of each
    parameter's size from step to step. A state tensor taken from :meth:`state_dict` without copying
    may therefore be overwritten by later steps; state given to :meth:`load_state_dict` is copied, and
    never written to.

    The rule follows the parameters' device: each parameter is updated where it lives (CPU, CUDA or
    MPS) by a copy of the rule on that device, and its state is kept there, so a model moved with
    ``model.to("cuda")`` before the optimizer is built trains on the GPU. The artifact itself loads to
    the CPU.

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

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        artifact: str | os.PathLike | MetaArtifact | UpdateRule = DEFAULT_ARTIFACT,
        *,
        lr: float = 1.0,
        total_steps: int | None = None,
        cooldown: float = COOLDOWN,
    ) -> None:
        lr = check_nonnegative_float(lr, "lr", hint="1.0 applies the learned update as is")
        total_steps = check_optional_int(total_steps, "total_steps", 1, none_means="no cool-down")
        cooldown = check_fraction(cooldown, "cooldown")
        rule, source = _resolve_rule(artifact)
        self.rule = rule.eval().requires_grad_(False)
        self.artifact_source = source
        self._rules: dict[tuple[torch.dtype, torch.device], UpdateRule] = {}
        # Per parameter, what the rule keeps from step to step: buffers for its outputs, its rates on the host
        # (see UpdateRule.foreach_step and foreach_step_).
        self._workspace: dict[Tensor, dict[str, Any]] = {}
        self._warned_past_end = False
        super().__init__(params, {"lr": float(lr), "total_steps": total_steps, "cooldown": float(cooldown)})

    def _rule_for(self, p: Tensor) -> UpdateRule:
        key = (_compute_dtype(p.dtype), p.device)
        if key not in self._rules:
            self._rules[key] = copy.deepcopy(self.rule).to(device=p.device, dtype=key[0])
        return self._rules[key]

    def _rule_record(self) -> dict[str, Any]:
        return {"config": self.rule.get_config(), "sha256": tensors_sha256(self.rule.state_dict())}

    def _check_same_rule(self, record: dict[str, Any], mine: dict[str, Any]) -> None:
        """Refuse a state saved with another rule (``record``) than this optimizer's (``mine``: other weights
        or settings), but for the same weights under other values of the rule's ``resumable_settings``,
        which only warns."""
        theirs = dict(record.get("config") or {})
        differ = sorted(k for k in mine["config"].keys() | theirs.keys() if mine["config"].get(k) != theirs.get(k))
        resumable = type(self.rule).resumable_settings
        if record.get("sha256") == mine["sha256"] and differ and set(differ) <= resumable.keys():
            changes = ", ".join(
                f"{k}={theirs.get(k, resumable[k])}, here {mine['config'].get(k, resumable[k])}" for k in differ
            )
            warnings.warn(
                f"This optimizer state was saved with the same learned rule under other settings ({changes}); "
                f"it goes on with this optimizer's.",
                UserWarning,
                stacklevel=3,
            )
            return
        what = "other weights" if record.get("sha256") != mine["sha256"] else f"other settings: {', '.join(differ)}"
        raise ValueError(
            f"This optimizer state was saved with a different learned optimizer ({theirs.get('name')!r}, "
            f"{what}); create the LearnedOptimizer with the same artifact before loading it."
        )

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], _T]) -> _T: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], _T] | None = None) -> _T | None:
        """Update every parameter that has a gradient; return the closure's loss, if a closure is given."""
        loss: _T | None = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        batches: dict[tuple[torch.dtype, torch.device], list[Work]] = {}
        for gi, group in enumerate(self.param_groups):
            for pi, p in enumerate(group["params"]):
                if p.grad is None or p.numel() == 0:  # nothing to update (torch.optim.Adam's steps are no-ops too)
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LearnedOptimizer does not support sparse gradients.")
                batches.setdefault((_compute_dtype(p.dtype), p.device), []).append((gi, pi, group["lr"], p))
        checked = [(work, dtype, *checked_grads(work, dtype)) for (dtype, _), work in batches.items()]
        in_place = [self._in_place(batch[0], batch[1]) for batch in checked]
        results = [self._batch_update(*batch) for batch, direct in zip(checked, in_place) if not direct]
        for batch in (batch for batch, direct in zip(checked, in_place) if direct):  # after all checks: all or nothing
            self._update_in_place(*batch)
        for ps, states, steps, spaces, new_ps, new_states in results:
            torch._foreach_copy_(ps, new_ps)
            for p, state, new_state in zip(ps, states, new_states):
                self._recycle(p, state, new_state)
                state.update(new_state)
            count_steps(states, steps, spaces, in_place=False)
        return loss

    def _recycle(self, p: Tensor, state: dict[str, Any], new_state: dict[str, Tensor]) -> None:
        """Hand the state tensors this step retires back to the rule as buffers (only ones it made)."""
        space = self._workspace.get(p)
        if space is None:
            return
        for k, new in new_state.items():
            if space.get(k) is new:  # written into a buffer: the retired tensor is the next buffer
                live = space.get("live:" + k)
                if live is not None and state.get(k) is live:
                    space[k] = cast(Tensor, live)  # (mypy narrows ``live`` to the state's value type)
                else:  # not made by the rule (fresh or loaded state): the caller may still hold it
                    del space[k]
                space["live:" + k] = new

    def _in_place(self, work: list[Work], dtype: torch.dtype) -> bool:
        """Whether the rule may update these parameters in place (see the class notes)."""
        return self.rule.in_place and own_dtype(work, dtype) and all(lr <= _IN_PLACE_MAX_SCALE for *_, lr, _ in work)

    def _states_and_steps(
        self, work: list[Work], xs: list[Tensor]
    ) -> tuple[UpdateRule, list[Any], list[float], list[dict[str, Any]]]:
        """The rule for these parameters, their states (made on their first step), their new step numbers
        and their workspaces."""
        rule = self._rule_for(work[0][3])
        states = [self.state[p] for *_, p in work]
        spaces = [self._workspace.setdefault(p, {}) for *_, p in work]
        for state, x in zip(states, xs):
            if not state:
                state.update(rule.init_state(x))
                state["step"] = torch.zeros((), dtype=x.dtype, device=x.device)
        return rule, states, [host_step(state, space) + 1 for state, space in zip(states, spaces)], spaces

    def _scales(self, work: list[Work], steps: list[float]) -> list[float]:
        """Each parameter's factor of the learned update at its step: its group's ``lr`` and cool-down."""
        scales = []
        for (gi, _, lr, _), t in zip(work, steps):
            group = self.param_groups[gi]
            total = group.get("total_steps")  # absent from states saved before the cool-down existed
            cooldown = group.get("cooldown", COOLDOWN)
            if total is not None and cooldown and t > total and not self._warned_past_end:
                self._warned_past_end = True
                warnings.warn(
                    f"step {int(t)} is past total_steps={total}: the learned update keeps the last step's "
                    "scale. Give the LearnedOptimizer the run's true number of steps.",
                    stacklevel=6,  # the line that called step()
                )
            scales.append(lr * cooldown_scale(t, total, cooldown))
        return scales

    def _update_in_place(
        self, work: list[Work], dtype: torch.dtype, xs: list[Tensor], gs: list[Tensor], g_norms: list[Tensor] | None
    ) -> None:
        """Update parameters of the parameters' own dtype in place (``xs`` are the parameters themselves)."""
        rule, states, steps, spaces = self._states_and_steps(work, xs)
        scales = self._scales(work, steps)
        rule.foreach_step_(xs, gs, states, steps, g_norms, None if all(c == 1.0 for c in scales) else scales, spaces)
        count_steps(states, steps, spaces, in_place=True)

    def _batch_update(
        self, work: list[Work], dtype: torch.dtype, xs: list[Tensor], gs: list[Tensor], g_norms: list[Tensor] | None
    ) -> tuple[Any, ...]:
        """The checked new values and states of parameters sharing a compute dtype and device (none written)."""
        ps = [p for _, _, _, p in work]
        rule, states, steps, workspace = self._states_and_steps(work, xs)
        rule_states = [
            {k: v if v.dtype == dtype else v.to(dtype) for k, v in state.items() if k != "step"} for state in states
        ]
        new_xs, new_states = rule.foreach_step(xs, gs, rule_states, steps, g_norms, workspace)
        new_xs = list(new_xs)
        scales = self._scales(work, steps)
        scaled = [i for i, c in enumerate(scales) if c != 1.0]
        if scaled:  # x + scale * (new_x - x)
            delta = torch._foreach_sub([new_xs[i] for i in scaled], [xs[i] for i in scaled])
            torch._foreach_mul_(delta, [float(scales[i]) for i in scaled])
            for i, d in zip(scaled, delta):
                new_xs[i] = xs[i] + d
        new_ps = [x.to(p.dtype) for x, p in zip(new_xs, ps)]
        finite = all_within(list(torch._foreach_norm(new_ps)), math.inf)
        if not finite and (bad := first_nonfinite(work, new_ps)) is not None:
            gi, pi, _, p = bad
            raise FloatingPointError(
                f"The learned update of parameter {pi} in group {gi} is not finite in {p.dtype}, so no "
                "parameter was updated. The parameters or gradients are far outside the range the "
                "optimizer was trained on (or of the dtype); rescale the inputs or the loss."
            )
        return ps, states, steps, workspace, new_ps, new_states

    def state_dict(self) -> dict[str, Any]:
        """Like ``torch.optim.Optimizer.state_dict``, plus a record of the learned rule it belongs to."""
        return {**super().state_dict(), "update_rule": self._rule_record()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore state saved by :meth:`state_dict`.

        Refused, with what differs, when it was saved by another optimizer (``torch.optim.Adam``, or
        another learned rule) or for parameters of other counts or shapes. A state saved with the same
        rule's weights under other values of its ``resumable_settings`` (such as the momentum bound of
        ``HyperController``: ``default-l2o`` before it shipped with one) loads, with a warning: the run goes
        on with this optimizer's.
        """
        state_dict = dict(state_dict)
        record = state_dict.pop("update_rule", None)
        if record is None:
            keys = sorted({k for entry in dict(state_dict.get("state") or {}).values() for k in entry})
            raise ValueError(
                "This optimizer state was not saved by LearnedOptimizer.state_dict(): it has no "
                f"'update_rule' record (its per-parameter state holds {keys}, as another optimizer's, "
                "such as torch.optim.Adam's, would). Start the LearnedOptimizer afresh instead."
            )
        mine = self._rule_record()  # a checksum of every weight of the rule: computed once
        if record != mine:
            self._check_same_rule(record, mine)
        params = self._check_loadable(state_dict)
        super().load_state_dict(state_dict)
        self._workspace.clear()
        # Copies (torch may keep the given tensors), in the rule's dtype: half parameters keep float32 state.
        for key, p in params.items():
            if key in state_dict["state"]:
                self.state[p] = {
                    k: v.to(device=p.device, dtype=_compute_dtype(p.dtype), copy=True)
                    for k, v in state_dict["state"][key].items()
                }

    def _check_loadable(self, state_dict: dict[str, Any]) -> dict[Any, Tensor]:
        """The parameter of each saved id, after checking the saved groups and state fit this optimizer's."""
        saved = state_dict.get("param_groups")
        if not isinstance(saved, list) or not isinstance(state_dict.get("state"), dict):
            raise ValueError("This is not an optimizer state: it needs 'state' and 'param_groups' entries.")
        sizes, own = [len(g["params"]) for g in saved], [len(g["params"]) for g in self.param_groups]
        if sizes != own:
            raise ValueError(
                f"This optimizer state has parameter groups of {sizes} tensors; this optimizer's "
                f"have {own}. Load it into an optimizer built on the same model."
            )
        params = dict(
            zip(
                chain.from_iterable(g["params"] for g in saved),
                chain.from_iterable(g["params"] for g in self.param_groups),
            )
        )
        where = {key: (gi, pi) for gi, g in enumerate(saved) for pi, key in enumerate(g["params"])}
        for key, entry in state_dict["state"].items():
            if key not in params:
                raise ValueError(
                    f"This optimizer state has state for parameter {key!r}, which none of its "
                    "parameter groups lists; it is not a LearnedOptimizer state."
                )
            p, (gi, pi) = params[key], where[key]
            expected = {
                k: tuple(v.shape) for k, v in self.rule.init_state(torch.empty(p.shape, device="meta")).items()
            } | {"step": ()}
            found = {k: tuple(v.shape) if isinstance(v, Tensor) else None for k, v in entry.items()}
            if set(found) != set(expected):
                raise ValueError(
                    f"The saved state of parameter {pi} in group {gi} holds {sorted(found)}; the "
                    f"{self.rule.name!r} rule keeps {sorted(expected)}. It was saved by another "
                    "optimizer."
                )
            for k, shape in expected.items():
                if found[k] != shape:
                    raise ValueError(
                        f"The saved state of parameter {pi} in group {gi} has {k!r} of shape "
                        f"{found[k]}; this optimizer's parameter of shape {tuple(p.shape)} needs "
                        f"{shape}. It was saved for a differently shaped model."
                    )
        return params

    def __repr__(self) -> str:
        groups = ", ".join(
            f"group {i}: {len(g['params'])} tensors, lr={g['lr']}"
            + (f", total_steps={g['total_steps']}" if g.get("total_steps") else "")
            for i, g in enumerate(self.param_groups)
        )
        return f"LearnedOptimizer({self.rule.name} from {self.artifact_source}; {groups})"
