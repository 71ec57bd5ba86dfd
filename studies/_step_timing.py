"""The time of ``optimizer.step()``, as the learned-optimizer studies report it."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

import automl_meta as am


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


def _cnn(blocks: int, channels: int) -> nn.Module:
    """A CNN of many small tensors (a convolution and a batch norm per block), as image models have."""
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
    for _ in range(blocks):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10))


def step_cost(rule: str = "default-l2o", quick: bool = False) -> dict[str, dict[str, float]]:
    """``step()`` time of the learned optimizer ``rule`` and foreach Adam on three models.

    A 10k- and a 1M-parameter MLP (6 tensors each), and a 16-block CNN of 70 small tensors, where the
    per-tensor work weighs most. Steps are timed by :func:`step_ms_interleaved` in blocks of 20 steps
    (whole controller intervals); the figures are medians over blocks of the time per step. ``cooling_*``
    times the learned optimizer while it cools down (``total_steps`` given: each tensor's update scaled).
    """
    models = {
        "10k": lambda: nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 32), nn.ReLU(), nn.Linear(32, 10)),
        "1M": lambda: nn.Sequential(
            nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, 10)
        ),
        "CNN": lambda: _cnn(16, 16),
    }
    inputs = {"10k": (64, 64), "1M": (64, 512), "CNN": (8, 3, 16, 16)}
    out = {}
    for size, make in models.items():
        torch.manual_seed(0)
        model = make()
        nn.functional.cross_entropy(
            model(torch.randn(*inputs[size])), torch.randint(0, 10, (inputs[size][0],))
        ).backward()
        opts = {
            "Adam": torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True),
            "L2O": am.optim.LearnedOptimizer(model.parameters(), artifact=rule),
            # Told a run's length, it scales its update in the last steps: here every step is scaled.
            "L2O cooling": am.optim.LearnedOptimizer(
                model.parameters(), artifact=rule, total_steps=1_000_000_000, cooldown=1.0
            ),
        }
        ms = step_ms_interleaved(opts, 5 if quick else 50, at_least=20)
        params = list(model.parameters())
        out[size] = {
            "n_params": sum(p.numel() for p in params),
            "n_tensors": len(params),
            "adam_ms": ms["Adam"],
            "l2o_ms": ms["L2O"],
            "ratio": ms["L2O"] / ms["Adam"],
            "cooling_ms": ms["L2O cooling"],
            "cooling_ratio": ms["L2O cooling"] / ms["Adam"],
        }
    return out
