"""Per-parameter step counts of :class:`~automl_meta.optim.LearnedOptimizer`, kept on the host as well.

The count lives in each parameter's state as a 0-dim tensor (as ``torch.optim.Adam``'s does, so
``state_dict`` holds it), and the rule needs it as a number. Reading it back from the tensor on every
step would cost a transfer per step; the workspace keeps the number beside the tensor it was written to.
"""

from __future__ import annotations

from typing import Any, cast

import torch

from ..learners._many_tensors import constant


def host_step(state: dict[str, Any], space: dict[str, Any]) -> float:
    """The step count of a parameter's state: kept on the host since the optimizer last wrote it, else read
    (once after loading, or after the count was set from outside)."""
    kept = space.get("step")
    return cast(float, kept[1]) if kept is not None and kept[0] is state["step"] else float(state["step"])


def count_steps(states: list[Any], steps: list[float], spaces: list[dict[str, Any]], *, in_place: bool) -> None:
    """Write the new step counts into the states (in place on the in-place path, as ``torch.optim.Adam``
    does) and keep them on the host."""
    counts = [state["step"] for state in states]
    ones = [constant(1.0, counts[0].dtype, counts[0].device)] * len(counts)  # cheaper than the number 1.0
    if in_place:
        torch._foreach_add_(counts, ones)
    else:
        for state, count in zip(states, torch._foreach_add(counts, ones)):
            state["step"] = count
    for state, step, space in zip(states, steps, spaces):
        space["step"] = (state["step"], step)
