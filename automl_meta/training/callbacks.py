"""Hooks into meta-training: subclass :class:`Callback` and pass instances to ``callbacks=`` of
:class:`~automl_meta.MetaTrainer` or :class:`~automl_meta.training.UnrolledTrainer`.

Both trainers call the hooks the same way; ``iteration`` is the trainer's position after the step, a
meta-update for ``MetaTrainer`` and an episode (several truncated meta-updates) for ``UnrolledTrainer``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ._outer_loop import OuterLoop


class Callback:
    """Base class: override the hooks you need. Set ``trainer.stop_training = True`` to stop early.

    Examples
    --------
    >>> from automl_meta.training import Callback
    >>> class PrintValidation(Callback):
    ...     def on_validation_end(self, trainer, iteration, logs):
    ...         print(iteration, round(logs["val_loss"], 3))
    """

    def on_fit_start(self, trainer: OuterLoop) -> None:
        """Before the first iteration (after a resume has restored the state)."""

    def on_iteration_end(self, trainer: OuterLoop, iteration: int, logs: dict[str, Any]) -> None:
        """After each step; ``logs`` has ``loss``, ``grad_norm`` and ``skipped`` (MetaTrainer adds ``metric``)."""

    def on_validation_end(self, trainer: OuterLoop, iteration: int, logs: dict[str, Any]) -> None:
        """After each validation; ``logs`` is the new ``history_`` entry plus ``best`` (True if improved)."""

    def on_fit_end(self, trainer: OuterLoop) -> None:
        """After the last iteration, before the artifact is built."""


class EarlyStopping(Callback):
    """Stop when the validation loss has not improved by ``min_delta`` for ``patience`` validations."""

    def __init__(self, patience: int = 10, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience!r}.")
        self.patience, self.min_delta = patience, min_delta
        self.best, self.wait = math.inf, 0

    def on_validation_end(self, trainer: OuterLoop, iteration: int, logs: dict[str, Any]) -> None:
        if logs["val_loss"] < self.best - self.min_delta:
            self.best, self.wait = logs["val_loss"], 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop_training = True
