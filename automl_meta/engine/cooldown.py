"""The cool-down of a learned optimizer that knows the run's length (:class:`~automl_meta.optim.LearnedOptimizer`'s
``total_steps``, and meta-training runs that cool down as it will).

A learned rule sets its rates from what it sees of the run so far; it cannot know when the run ends. Given
``total_steps``, the optimizer scales the learned update linearly down to 0 over the run's last
``cooldown`` fraction of steps, as the warmup-stable-decay schedules do with a constant rate (a cool-down
over the last 20% matches a cosine schedule's final loss: Hägele et al., 2024, "Scaling Laws and
Compute-Optimal Training beyond Fixed Training Durations"). With mini-batch gradients the final loss of a
run at a steady rate is held up by the gradients' noise, which the shrinking steps average out.
"""

from __future__ import annotations

COOLDOWN = 0.2  # the default fraction of the run over which the update is scaled down


def cooldown_scale(step: float, total_steps: int | None, cooldown: float = COOLDOWN) -> float:
    """The factor of the learned update at ``step`` (counted from 1) of a run of ``total_steps`` steps.

    1 until the last ``cooldown * total_steps`` steps, then linearly down to ``1 / (cooldown * total_steps)``
    at the last step; steps past ``total_steps`` keep the last step's factor. 1 throughout when
    ``total_steps`` is None or ``cooldown`` is 0.

    Examples
    --------
    >>> [round(cooldown_scale(t, 10, 0.5), 2) for t in (1, 5, 6, 7, 10, 12)]
    [1.0, 1.0, 1.0, 0.8, 0.2, 0.2]
    """
    if total_steps is None or cooldown == 0:
        return 1.0
    left = max(total_steps - step + 1, 1.0)
    return min(1.0, left / (cooldown * total_steps))
