"""The sinusoid regression family of Finn et al. (2017), the standard few-shot benchmark."""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
import torch

from ..exceptions import TaskError
from .batch import Task, TaskBatch
from .distribution import TaskDistribution, as_generator, check_count


class Sinusoid(TaskDistribution):
    """Regress ``y = A sin(x - phi)`` from ``shots`` points of a random sine wave.

    Amplitude ``A ~ U[0.1, 5]``, phase ``phi ~ U[0, pi]`` and inputs ``x ~ U[-5, 5]``,
    as in the MAML paper.

    Parameters
    ----------
    shots : int, default=10
        Support points per task (K in K-shot).
    query_shots : int, optional
        Query points per task; defaults to ``shots``.
    amplitude, phase, x_range : tuple of float
        Ranges of the uniform distributions.

    Examples
    --------
    >>> from automl_meta.tasks import Sinusoid
    >>> batch = Sinusoid(shots=5, query_shots=20).sample(3, rng=0)
    >>> tuple(batch.x_support.shape), tuple(batch.y_query.shape)
    ((3, 5, 1), (3, 20, 1))
    """

    task_type = "regression"
    n_features = 1
    n_outputs = 1

    def __init__(
        self,
        shots: int = 10,
        query_shots: int | None = None,
        *,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
    ) -> None:
        self.shots = check_count(shots, "shots")
        self.query_shots = self.shots if query_shots is None else check_count(query_shots, "query_shots")
        for name, (lo, hi) in {"amplitude": amplitude, "phase": phase, "x_range": x_range}.items():
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise TaskError(f"{name} must be a finite (low, high) pair with low <= high, got {(lo, hi)}.")
        # pairs: each was unpacked into (lo, hi) above
        self.amplitude = cast("tuple[float, float]", tuple(amplitude))
        self.phase = cast("tuple[float, float]", tuple(phase))
        self.x_range = cast("tuple[float, float]", tuple(x_range))

    def _draw(self, n_tasks: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        amp = rng.uniform(*self.amplitude, size=(n_tasks, 1, 1))
        phase = rng.uniform(*self.phase, size=(n_tasks, 1, 1))
        x = rng.uniform(*self.x_range, size=(n_tasks, self.shots + self.query_shots, 1))
        return x, amp * np.sin(x - phase), amp, phase

    def sample_task(self, rng: np.random.Generator) -> Task:
        x, y, _, _ = self._draw(1, rng)
        k = self.shots
        return Task(x[0, :k], y[0, :k], x[0, k:], y[0, k:])

    def sample(self, n_tasks: int, rng: np.random.Generator | int | None = None) -> TaskBatch:
        # Vectorised: every sinusoid task has the same shape, so no padding is needed.
        n_tasks = check_count(n_tasks, "n_tasks")
        x, y, _, _ = self._draw(n_tasks, as_generator(rng))
        k, f32 = self.shots, torch.float32

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=f32)

        return TaskBatch(
            x_support=t(x[:, :k]),
            y_support=t(y[:, :k]),
            x_query=t(x[:, k:]),
            y_query=t(y[:, k:]),
            support_mask=torch.ones(n_tasks, k),
            query_mask=torch.ones(n_tasks, self.query_shots),
            feature_mask=torch.ones(n_tasks, 1),
            class_mask=torch.ones(n_tasks, 1),
            task_type="regression",
        )

    def sample_with_truth(
        self,
        n_tasks: int,
        rng: np.random.Generator | int | None = None,
    ) -> tuple[TaskBatch, np.ndarray, np.ndarray]:
        """A batch plus each task's ``(amplitude, phase)``, for plotting the true curves."""
        rng = as_generator(rng)
        state = rng.bit_generator.state
        amp_phase = self._draw(n_tasks, rng)[2:]
        rng.bit_generator.state = state
        return self.sample(n_tasks, rng), amp_phase[0][:, 0, 0], amp_phase[1][:, 0, 0]

    def get_config(self) -> dict[str, Any]:
        return {
            "shots": self.shots,
            "query_shots": self.query_shots,
            "amplitude": list(self.amplitude),
            "phase": list(self.phase),
            "x_range": list(self.x_range),
        }
