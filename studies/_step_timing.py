"""The time of ``optimizer.step()``, as the learned-optimizer studies report it."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np


def step_ms(opt: Any, reps: int, *, at_least: int = 1, warmup: int | None = None) -> float:
    """Median milliseconds per ``opt.step()`` over ``reps`` blocks of steps (gradients as they are).

    A block holds a whole number of the rule's controller intervals (``opt.rule.interval``, 1 for other
    optimizers) and at least ``at_least`` steps, so the steps that call the controller count in their true
    proportion. ``warmup`` steps first (default: one block) create the state.
    """
    interval = getattr(getattr(opt, "rule", None), "interval", 1)
    block = interval * max(1, math.ceil(at_least / interval))
    for _ in range(block if warmup is None else warmup):
        opt.step()
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(block):
            opt.step()
        samples.append((time.perf_counter() - t) / block)
    return 1e3 * float(np.median(samples))
