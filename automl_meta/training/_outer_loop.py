"""The outer loop shared by the meta-trainers.

:class:`OuterLoop` owns everything a meta-training run does around its updates: the position counter,
the progress bar, the smoothed training loss, periodic validation and the best weights, the guard against
non-finite updates, checkpoints and resume, callbacks and the final artifact. A trainer
(:class:`~automl_meta.training.MetaTrainer` counts iterations,
:class:`~automl_meta.training.UnrolledTrainer` episodes) implements a few small hooks.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._validation import check_positive_int, check_seed
from ..artifacts import MetaArtifact
from ..engine import resolve_device
from ..exceptions import MetaTrainingError
from . import checkpoint
from .callbacks import Callback
from .distributed import ProcessGroup, current_group

CHECKPOINT_NAME = "last.ckpt"
ARTIFACT_NAME = "artifact.ameta"


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    """A generator that depends only on ``(seed, *key)``: a resumed run draws the same tasks."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


class OuterLoop:
    """Base class of the meta-trainers: the outer loop, with one hook per thing a trainer does its own way.

    A subclass sets, in ``__init__``, ``eval_every``, ``checkpoint_every``, ``checkpoint_dir``, ``resume``,
    ``max_nonfinite``, ``callbacks``, ``seed`` and ``verbose``; in ``_setup``, ``optimizer`` (and it calls
    :meth:`_reset_progress`). It implements the hooks :meth:`_trained`, :meth:`_fingerprint`,
    :meth:`_n_planned`, :meth:`_setup`, :meth:`_step`, :meth:`_validation_enabled`,
    :meth:`_validation_logs` and :meth:`_artifact`. The class constants name the unit of the loop in the
    history, the checkpoint record and the progress bar.

    Attributes
    ----------
    history_ : list of dict
        One entry per validation: the position (key ``_unit_key``), ``train_loss`` and the validation logs.
    n_skipped_ : int
        Meta-updates skipped for a non-finite loss or gradient.
    best_loss_ : float
        Best validation loss so far (``inf`` before the first).
    stop_training : bool
        Set to True (by a callback) to end the run after the current step (in a multi-process run, a
        callback of any process may set it: all of them stop after the same step).
    """

    _unit_key = "iteration"  # the position's key in history entries and checkpoint records
    _best_key = "best_iteration"  # where validation was best, in checkpoint records
    _bar_unit = "it"
    _smoothing = 0.05  # weight of the newest loss in the running training loss

    optimizer: torch.optim.Optimizer
    checkpoint_dir: Path | None
    checkpoint_every: int
    eval_every: int
    resume: bool
    max_nonfinite: int
    callbacks: list[Callback]
    seed: int
    verbose: int
    device: torch.device
    distributed: bool | None = False
    stop_training: bool = False
    _group: ProcessGroup | None = None  # set by fit(): the processes this run shards over, if several
    _prepared = False  # set by _reset_progress: the validation data exists from then on
    # Progress, set by _reset_progress (and restored from checkpoints):
    _running: float | None  # smoothed training loss, checkpointed so a resumed run reports the same
    _best_position: int | None
    _best_state: dict[str, torch.Tensor] | None

    def _set_loop_options(
        self,
        *,
        checkpoint_dir: str | os.PathLike[str] | None,
        resume: bool,
        max_nonfinite: int,
        callbacks: Sequence[Callback],
        seed: int,
        verbose: int,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        distributed: bool | None = False,
    ) -> None:
        """Check and store the settings every trainer's loop shares (called by the subclass's ``__init__``)."""
        if distributed is not None and not isinstance(distributed, bool):
            raise ValueError(f"distributed must be None (automatic), True or False, got {distributed!r}.")
        if resume and checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir to resume from.")
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.resume = bool(resume)
        self.max_nonfinite = check_positive_int(max_nonfinite, "max_nonfinite")
        self.callbacks = list(callbacks)
        self.seed, self.verbose = check_seed(seed), int(verbose)
        self.device, self.distributed = resolve_device(device, dtype), distributed
        self.stop_training = False

    # -- hooks ---------------------------------------------------------------------------------------
    def _trained(self) -> torch.nn.Module:
        """The module whose weights are meta-trained, checkpointed and kept at their best."""
        raise NotImplementedError

    def _fingerprint(self) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        raise NotImplementedError

    def _n_planned(self) -> int:
        """Where the loop ends (iterations or episodes)."""
        raise NotImplementedError

    def _setup(self) -> None:
        """Build the optimizer and validation data and reset the progress (called by :meth:`fit`)."""
        raise NotImplementedError

    def _step(self) -> dict[str, Any]:
        """One unit of meta-training at the current position; logs with ``loss``, ``grad_norm``, ``skipped``."""
        raise NotImplementedError

    def _validation_enabled(self) -> bool:
        """Whether the run has validation data."""
        raise NotImplementedError

    def _validation_logs(self) -> dict[str, float]:
        """Score the current weights on the validation data: ``val_loss`` first, then any metric."""
        raise NotImplementedError

    def _artifact(self) -> MetaArtifact:
        """The artifact of the trained module (its best weights are loaded when this is called)."""
        raise NotImplementedError

    def _counts_toward_running(self, logs: dict[str, Any]) -> bool:
        """Whether the step's loss enters the running training loss."""
        return not logs["skipped"]

    # -- processes ------------------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        """This process's rank in a multi-process run (0 in a run of one process)."""
        return 0 if self._group is None else self._group.rank

    @property
    def world_size(self) -> int:
        """The number of processes meta-training together (1 unless run under ``torch.distributed``)."""
        return 1 if self._group is None else self._group.size

    @property
    def is_main_process(self) -> bool:
        """Whether this process writes checkpoints and the artifact and shows progress (rank 0)."""
        return self.rank == 0

    # -- public API ----------------------------------------------------------------------------------
    def validate(self) -> float:
        """Mean validation loss of the current weights (during or after :meth:`fit`).

        Raises
        ------
        RuntimeError
            The trainer has not been set up by :meth:`fit` yet, or validation is off.
        """
        if not self._prepared:
            raise RuntimeError(f"{type(self).__name__} has no validation data yet: call fit() first.")
        if not self._validation_enabled():
            raise RuntimeError("Validation is off (no validation tasks were requested).")
        return self._validation_logs()["val_loss"]

    def fit(self) -> MetaArtifact:
        """Run meta-training (or finish a resumed run) and return the artifact of the best weights."""
        group = current_group(self.distributed)
        self._group = None if group is None else group.on(self.device)
        self._setup()
        self._restore()
        if self._group is not None:
            self._group.check_same_position(self._position, self._unit_key)
        self.stop_training = False
        for cb in self.callbacks:
            cb.on_fit_start(self)
        quiet = self.verbose <= 0 or not self.is_main_process
        disable = True if quiet else (None if not sys.stderr.isatty() else False)
        bar = tqdm(
            total=self._n_planned(),
            initial=self._position,
            desc=f"meta-train {self._trained().name}",
            unit=self._bar_unit,
            disable=disable,
            dynamic_ncols=True,
            leave=self.verbose > 0,
        )
        try:
            while self._position < self._n_planned() and not self.stop_training:
                self._advance(bar)
        finally:
            bar.close()
        for cb in self.callbacks:
            cb.on_fit_end(self)
        if self._best_state is not None:
            self._trained().load_state_dict(self._best_state)
        artifact = self._artifact()
        if self.checkpoint_dir is not None and self.is_main_process:
            artifact.save(self.checkpoint_dir / ARTIFACT_NAME)
        return artifact

    # -- the loop ------------------------------------------------------------------------------------
    def _advance(self, bar: tqdm) -> None:
        """One step, then the callbacks, validation and checkpoint that fall on the new position."""
        logs = self._step()
        self._position += 1
        if self._counts_toward_running(logs):
            prev = self._running
            self._running = (
                logs["loss"] if prev is None else (1 - self._smoothing) * prev + self._smoothing * logs["loss"]
            )
        for cb in self.callbacks:
            cb.on_iteration_end(self, self._position, logs)
        if self._group is not None and self.callbacks:  # a callback of one process may stop the run: all stop
            self.stop_training = self._group.any(self.stop_training)
        at_end = self._position == self._n_planned()
        if self._validation_enabled() and (self._position % self.eval_every == 0 or at_end):
            vlogs = self._validation_point()
            bar.set_postfix(
                loss="-" if self._running is None else f"{self._running:.4g}",
                val=f"{vlogs['val_loss']:.4g}",
                refresh=False,
            )
        if self._position % self.checkpoint_every == 0 or at_end or self.stop_training:
            self._save_checkpoint()
        bar.update(1)

    def _validation_point(self) -> dict[str, Any]:
        """Validate, keep the weights if best, record the history entry and tell the callbacks."""
        vlogs = self._validation_logs()
        improved = self._offer_best(vlogs["val_loss"])
        entry = {
            self._unit_key: self._position,
            "train_loss": self._running if self._running is not None else math.nan,
            **vlogs,
        }
        self.history_.append(entry)
        logs = {**entry, "best": improved}
        for cb in self.callbacks:
            cb.on_validation_end(self, self._position, logs)
        return logs

    def _run_device(self) -> torch.device:
        """Where this process computes: ``device``, with a bare ``"cuda"`` made the process's own GPU."""
        return self.device if self._group is None else self._group.device

    def _reset_progress(self) -> None:
        self._position, self._best_position = 0, None
        self.n_skipped_, self._consecutive_bad = 0, 0
        self.best_loss_, self._best_state = math.inf, None
        self._running = None
        self.history_: list[dict[str, Any]] = []
        self._prepared = True

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
                f"(last at {unit} {last}). {advice} The last checkpoint is intact."
            )
        return False

    def _offer_best(self, val: float) -> bool:
        """Keep the current weights if ``val`` is the best validation loss so far."""
        if not (math.isfinite(val) and val < self.best_loss_):
            return False
        self.best_loss_, self._best_position = val, self._position
        self._best_state = {k: v.detach().clone() for k, v in self._trained().state_dict().items()}
        return True

    def _best_val_loss(self) -> float | None:
        return None if math.isinf(self.best_loss_) else self.best_loss_

    # -- checkpoints ---------------------------------------------------------------------------------
    def _checkpoint_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    def _restore(self) -> None:
        """Continue from the last checkpoint, if resuming from one."""
        state = checkpoint.resume_state(self._checkpoint_path(), resume=self.resume, fingerprint=self._fingerprint())
        if state is None:
            return
        rec = state["record"]
        self._trained().load_state_dict(state["learner_state"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        self._best_state = state["best_state"]
        self._position, self._best_position = rec[self._unit_key], rec[self._best_key]
        self.best_loss_ = rec["best_loss"] if rec["best_loss"] is not None else math.inf
        self.n_skipped_, self._consecutive_bad = rec["n_skipped"], rec["consecutive_bad"]
        self.history_ = rec["history"]
        self._running = rec.get("running_loss")  # absent from UnrolledTrainer checkpoints before 0.2

    def _save_checkpoint(self) -> None:
        path = self._checkpoint_path()
        if path is None or not self.is_main_process:  # the processes hold the same state: one writes it
            return
        record = {
            self._unit_key: self._position,
            "fingerprint": self._fingerprint(),
            "best_loss": self._best_val_loss(),
            self._best_key: self._best_position,
            "n_skipped": self.n_skipped_,
            "consecutive_bad": self._consecutive_bad,
            "history": self.history_,
            "running_loss": self._running,
        }
        checkpoint.save(
            path,
            learner_state=self._trained().state_dict(),
            optimizer_state=self.optimizer.state_dict(),
            best_state=self._best_state,
            record=record,
        )
