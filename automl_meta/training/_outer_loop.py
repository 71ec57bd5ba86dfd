"""What every meta-trainer's outer loop keeps: its position, the best weights so far, skipped updates and a
checkpoint to resume from. :class:`~automl_meta.training.MetaTrainer` counts iterations,
:class:`~automl_meta.training.UnrolledTrainer` episodes; the bookkeeping is the same.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..exceptions import MetaTrainingError
from . import checkpoint

CHECKPOINT_NAME = "last.ckpt"
ARTIFACT_NAME = "artifact.ameta"


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    """A generator that depends only on ``(seed, *key)``: a resumed run draws the same tasks."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


class OuterLoop:
    """Bookkeeping shared by the meta-trainers.

    A subclass names its unit (``"iteration"`` or ``"episode"``: the attribute ``self.<unit>`` counts them
    and ``self.best_<unit>_`` is where validation was best), returns the module it trains from
    :meth:`_trained`, and sets ``optimizer``, ``checkpoint_dir``, ``resume`` and ``max_nonfinite``.
    """

    _unit = "iteration"
    optimizer: torch.optim.Optimizer
    checkpoint_dir: Path | None
    resume: bool
    max_nonfinite: int

    def _trained(self) -> torch.nn.Module:
        raise NotImplementedError

    def _fingerprint(self) -> dict[str, Any]:
        raise NotImplementedError

    def _extra_record(self) -> dict[str, Any]:
        """Subclass state to checkpoint besides the common counters."""
        return {}

    def _reset_progress(self) -> None:
        setattr(self, self._unit, 0)
        setattr(self, f"best_{self._unit}_", None)
        self.n_skipped_, self._consecutive_bad = 0, 0
        self.best_loss_, self._best_state = math.inf, None
        self.history_: list[dict[str, Any]] = []

    def _checkpoint_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    def _restore(self) -> dict[str, Any] | None:
        """Load the last checkpoint, if resuming from one; returns its record (for subclass state)."""
        state = checkpoint.resume_state(self._checkpoint_path(), resume=self.resume, fingerprint=self._fingerprint())
        if state is None:
            return None
        rec = state["record"]
        self._trained().load_state_dict(state["learner_state"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        self._best_state = state["best_state"]
        setattr(self, self._unit, rec[self._unit])
        setattr(self, f"best_{self._unit}_", rec[f"best_{self._unit}"])
        self.best_loss_ = rec["best_loss"] if rec["best_loss"] is not None else math.inf
        self.n_skipped_, self._consecutive_bad = rec["n_skipped"], rec["consecutive_bad"]
        self.history_ = rec["history"]
        return rec

    def _save_checkpoint(self) -> None:
        path = self._checkpoint_path()
        if path is None:
            return
        record = {self._unit: getattr(self, self._unit), "fingerprint": self._fingerprint(),
                  "best_loss": None if math.isinf(self.best_loss_) else self.best_loss_,
                  f"best_{self._unit}": getattr(self, f"best_{self._unit}_"), "n_skipped": self.n_skipped_,
                  "consecutive_bad": self._consecutive_bad, "history": self.history_, **self._extra_record()}
        checkpoint.save(path, learner_state=self._trained().state_dict(),
                        optimizer_state=self.optimizer.state_dict(), best_state=self._best_state, record=record)

    def _count_update(self, finite: bool, *, unit: str, last: int, advice: str) -> bool:
        """Count a skipped (non-finite) update; raise once more than ``max_nonfinite`` come in a row."""
        if finite:
            self._consecutive_bad = 0
            return True
        self.n_skipped_ += 1
        self._consecutive_bad += 1
        if self._consecutive_bad > self.max_nonfinite:
            raise MetaTrainingError(
                f"The meta-loss or meta-gradient was NaN/inf for {self._consecutive_bad} {unit}s in a row "
                f"(last at {unit} {last}). {advice} The last checkpoint is intact.")
        return False

    def _offer_best(self, val: float) -> bool:
        """Keep the current weights if ``val`` is the best validation loss so far."""
        if not (math.isfinite(val) and val < self.best_loss_):
            return False
        self.best_loss_ = val
        setattr(self, f"best_{self._unit}_", getattr(self, self._unit))
        self._best_state = {k: v.detach().clone() for k, v in self._trained().state_dict().items()}
        return True
