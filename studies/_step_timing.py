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


def step_ms_interleaved(opts: dict[str, Any], reps: int, *, at_least: int = 1) -> dict[str, float]:
    """Median milliseconds per ``step()`` of each optimizer, timed in turns: a block of each, ``reps`` times.

    Every optimizer is timed under the same conditions of the machine (clock speed, caches, other load),
    which drift over a run, so the ratios between them are steadier than from timing one after the other.
    A block holds a whole number of every rule's controller intervals and at least ``at_least`` steps; one
    block of each first creates the states.
    """
    unit = math.lcm(*(getattr(getattr(o, "rule", None), "interval", 1) for o in opts.values()))
    block = unit * max(1, math.ceil(at_least / unit))
    samples: dict[str, list[float]] = {name: [] for name in opts}
    for turn in range(reps + 1):
        for name, opt in opts.items():
            t = time.perf_counter()
            for _ in range(block):
                opt.step()
            if turn:  # the first turn is the warm-up
                samples[name].append((time.perf_counter() - t) / block)
    return {name: 1e3 * float(np.median(s)) for name, s in samples.items()}
