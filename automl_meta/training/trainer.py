"""MetaTrainer: the outer loop that meta-trains a learner on a task family."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import torch

from .._validation import check_nonnegative_int, check_positive_float, check_positive_int
from ..artifacts import MetaArtifact
from ..learners import Learner
from ..tasks import TaskBatch, TaskDistribution
from ._outer_loop import ARTIFACT_NAME, OuterLoop, seeded_rng  # noqa: F401  (family.py imports ARTIFACT_NAME)
from .callbacks import Callback

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _check_types(learner: object, tasks: object, validation_tasks: object) -> None:
    if not isinstance(learner, Learner):
        raise TypeError(f"learner must be an automl_meta Learner (e.g. MAML), got {type(learner).__name__}.")
    for name, dist in (("tasks", tasks), ("validation_tasks", validation_tasks)):
        if dist is not None and not isinstance(dist, TaskDistribution):
            raise TypeError(f"{name} must be a TaskDistribution (e.g. Sinusoid), got {type(dist).__name__}.")


def _check_dtype(dtype: object) -> torch.dtype:
    """``dtype`` (a torch dtype or its name, as a config file gives it) if it is float32 or float64."""
    resolved = DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype) or resolved not in DTYPES.values():
        raise ValueError(f"dtype must be torch.float32 or torch.float64 (or 'float32', 'float64'), got {dtype!r}.")
    return resolved


class MetaTrainer(OuterLoop):
    """Meta-train a learner on a task distribution.

    Each iteration samples ``meta_batch_size`` tasks, adapts the learner to all
    of them at once, and takes one outer optimizer step on the mean query loss
    (or the learner's own meta-gradient, for Reptile). Validation on a fixed
    set of held-out tasks keeps the best meta-parameters; checkpoints let a
    killed run resume and end exactly where an uninterrupted one would.

    Parameters
    ----------
    learner : Learner
        What to meta-train, e.g. ``MetaSGD(MLP([40, 40]))``.
    tasks : TaskDistribution
        The task family to meta-train on.
    meta_batch_size : int, default=25
        Tasks per meta-update.
    iterations : int, default=10_000
        Number of meta-updates.
    outer_lr : float, default=1e-3
        Learning rate of the outer optimizer.
    outer_optimizer : {"adam", "sgd"}, default="adam"
    clip_grad_norm : float, optional
        Clip the meta-gradient to this global norm.
    validation_tasks : TaskDistribution, optional
        Family of the held-out tasks (default: ``tasks``, drawn from a separate random stream).
    n_validation_tasks : int, default=100
        Held-out tasks; 0 turns validation off (the final parameters are kept).
    eval_every : int, default=500
        Iterations between validations.
    checkpoint_dir : str or Path, optional
        Where ``last.ckpt`` (and, at the end, ``artifact.ameta``) are written.
    checkpoint_every : int, default=500
        Iterations between checkpoints.
    resume : bool, default=False
        Continue from ``checkpoint_dir/last.ckpt`` when it exists.
    max_nonfinite : int, default=10
        Consecutive NaN/inf meta-losses (or gradients) skipped before giving up with an error.
    callbacks : sequence of Callback, optional
    seed : int, default=0
        Fixes the initialisation, every task batch and the validation tasks.
    verbose : int, default=1
        1 shows a progress bar on a terminal; 0 is silent.
    dtype : {torch.float32, torch.float64, "float32", "float64"}, default=torch.float32
        Precision of meta-training (a name, as a config file gives it, is accepted).
    adapt_steps_candidates : sequence of int, optional
        After training, the validation tasks are scored after each of these numbers of
        adaptation steps, and the best becomes the artifact's default (``training["adapt_steps"]``,
        used by the scikit-learn estimators). Steps beyond ``inner_steps`` are safeguarded.
    device : {"cpu", "cuda", "mps"} or torch.device, default="cpu"
        Where to meta-train (``"cuda:1"`` picks a GPU; under ``torchrun``, a bare ``"cuda"`` is each
        process's own GPU, ``LOCAL_RANK``). Checkpoints and artifacts are written from the CPU and load
        there, so a run started on a GPU can be resumed on the CPU and the other way round.
    distributed : bool, optional
        Shard each meta-batch over the processes of the default :mod:`torch.distributed` process group.
        None (default) does so when a group of more than one process is initialized (as ``torchrun`` with
        ``automl-meta meta-train`` does); True requires one; False ignores it. Every process samples the
        same meta-batch from ``(seed, iteration)`` and adapts its share of the tasks; the meta-gradients
        are summed with ``all_reduce``, weighted by each share's size, so the run takes the same steps as
        one process (to round-off) for any number of processes. Only process 0 writes checkpoints and the
        artifact; see the meta-training guide for launching.

    Attributes
    ----------
    history_ : list of dict
        One entry per validation: ``iteration``, ``train_loss``, ``val_loss``, ``val_metric``.
    best_iteration_ : int or None
        Iteration of the best validation loss.
    n_skipped_ : int
        Meta-updates skipped for a non-finite loss or gradient.

    Examples
    --------
    >>> import automl_meta as am
    >>> learner = am.learners.MAML(am.models.MLP([40, 40]), inner_lr=0.01)
    >>> trainer = am.MetaTrainer(learner, am.tasks.Sinusoid(shots=10), iterations=20, eval_every=10,
    ...                          n_validation_tasks=20, verbose=0)
    >>> artifact = trainer.fit()
    >>> [h["iteration"] for h in trainer.history_]
    [10, 20]
    """

    def __init__(
        self,
        learner: Learner,
        tasks: TaskDistribution,
        *,
        meta_batch_size: int = 25,
        iterations: int = 10_000,
        outer_lr: float = 1e-3,
        outer_optimizer: str = "adam",
        clip_grad_norm: float | None = None,
        validation_tasks: TaskDistribution | None = None,
        n_validation_tasks: int = 100,
        eval_every: int = 500,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 500,
        resume: bool = False,
        max_nonfinite: int = 10,
        callbacks: Sequence[Callback] = (),
        seed: int = 0,
        verbose: int = 1,
        dtype: torch.dtype | str = torch.float32,
        adapt_steps_candidates: Sequence[int] | None = None,
        device: str | torch.device = "cpu",
        distributed: bool | None = None,
    ) -> None:
        _check_types(learner, tasks, validation_tasks)
        if outer_optimizer not in OPTIMIZERS:
            raise ValueError(f"outer_optimizer must be one of {sorted(OPTIMIZERS)}, got {outer_optimizer!r}.")
        if clip_grad_norm is not None:
            check_positive_float(clip_grad_norm, "clip_grad_norm")
        dtype = _check_dtype(dtype)
        self.learner, self.tasks = learner, tasks
        self.meta_batch_size = check_positive_int(meta_batch_size, "meta_batch_size")
        self.iterations = check_positive_int(iterations, "iterations")
        self.outer_lr = check_positive_float(outer_lr, "outer_lr")
        self.outer_optimizer, self.clip_grad_norm = outer_optimizer, clip_grad_norm
        self.validation_tasks = validation_tasks if validation_tasks is not None else tasks
        self.n_validation_tasks = check_nonnegative_int(n_validation_tasks, "n_validation_tasks")
        self.eval_every = check_positive_int(eval_every, "eval_every")
        self.checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every")
        self._set_loop_options(
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            max_nonfinite=max_nonfinite,
            callbacks=callbacks,
            seed=seed,
            verbose=verbose,
            device=device,
            dtype=dtype,
            distributed=distributed,
        )
        self.dtype = dtype
        self.adapt_steps_candidates = (
            None
            if adapt_steps_candidates is None
            else [check_positive_int(s, "adapt_steps_candidates entries") for s in adapt_steps_candidates]
        )
        if self.adapt_steps_candidates is not None and n_validation_tasks == 0:
            raise ValueError("adapt_steps_candidates needs validation tasks (n_validation_tasks > 0).")

    # -- configuration -------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The settings that determine the run (stored in checkpoints and artifacts)."""
        return {
            "meta_batch_size": self.meta_batch_size,
            "iterations": self.iterations,
            "outer_lr": self.outer_lr,
            "outer_optimizer": self.outer_optimizer,
            "clip_grad_norm": self.clip_grad_norm,
            "n_validation_tasks": self.n_validation_tasks,
            "eval_every": self.eval_every,
            "seed": self.seed,
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def _fingerprint(self) -> dict[str, Any]:
        # What must not change between a run and its resumption (iterations may grow).
        cfg = {k: v for k, v in self.config().items() if k != "iterations"}
        return {
            "trainer": cfg,
            "learner": self.learner.get_config(),
            "tasks": self.tasks.describe(),
            "validation_tasks": self.validation_tasks.describe(),
        }

    # -- hooks of the outer loop -------------------------------------------------------------------------
    @property
    def iteration(self) -> int:
        """Meta-updates done so far."""
        return self._position

    @property
    def best_iteration_(self) -> int | None:
        """Iteration of the best validation loss (None before the first validation)."""
        return self._best_position

    def _n_planned(self) -> int:
        return self.iterations

    def _trained(self) -> torch.nn.Module:
        return self.learner

    def _setup(self) -> None:
        if not self.learner.is_setup:
            gen = torch.Generator().manual_seed(self.seed)
            self.learner.setup(self.tasks.task_type, self.tasks.n_features, self.tasks.n_outputs, generator=gen)
        if self._group is not None and self.meta_batch_size < self._group.size:
            raise ValueError(
                f"meta_batch_size ({self.meta_batch_size}) is smaller than the number of processes "
                f"({self._group.size}): every process needs at least one task. Raise meta_batch_size or "
                "launch fewer processes."
            )
        device = self._run_device()
        self.learner.to(device=device, dtype=self.dtype)
        self.optimizer = OPTIMIZERS[self.outer_optimizer](self.learner.parameters(), lr=self.outer_lr)
        self._val_batch = (
            self.validation_tasks.sample(self.n_validation_tasks, seeded_rng(self.seed, 1)).to(self.dtype, device)
            if self.n_validation_tasks
            else None
        )
        self._reset_progress()

    def _step(self) -> dict[str, Any]:
        # The whole meta-batch depends on (seed, iteration) only; each process adapts its own share of it.
        batch = self.tasks.sample(self.meta_batch_size, seeded_rng(self.seed, 0, self.iteration))
        if self._group is not None:
            batch = batch.select(self._group.shard(self.meta_batch_size))
        return self._meta_update(batch.to(self.dtype, self._run_device()))

    def _meta_update(self, batch: TaskBatch) -> dict[str, Any]:
        self.optimizer.zero_grad(set_to_none=True)
        logs = self.learner.meta_backward(batch)
        if self._group is not None:  # the mean over the whole meta-batch, the same on every process
            trained = [p for p in self.learner.parameters() if p.requires_grad]
            logs = self._group.reduce(trained, logs, weight=len(batch) / self.meta_batch_size)
        params = [p for p in self.learner.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm or math.inf) if params else torch.tensor(0.0)
        finite = math.isfinite(logs["loss"]) and bool(torch.isfinite(norm))
        if self._count_update(
            finite,
            unit="iteration",
            last=self.iteration + 1,
            advice="Lower outer_lr or inner_lr, set clip_grad_norm, or check the task data.",
        ):
            self.optimizer.step()
        return {**logs, "grad_norm": float(norm), "skipped": not finite}

    def _validation_enabled(self) -> bool:
        return self.n_validation_tasks > 0

    def _validation_logs(self) -> dict[str, float]:
        assert self._val_batch is not None  # called only when validation is enabled (n_validation_tasks > 0)
        losses, metric = self.learner.evaluate(self._val_batch)
        return {"val_loss": float(losses.mean()), "val_metric": float(metric.mean())}

    def _artifact(self) -> MetaArtifact:
        training = self.config()
        metrics: dict[str, Any] = {
            "val_loss": self._best_val_loss(),
            "best_iteration": self.best_iteration_,
            "iterations_run": self.iteration,
            "skipped_updates": self.n_skipped_,
        }
        if self.adapt_steps_candidates:
            assert self._val_batch is not None  # __init__ refuses candidates without validation tasks
            by_steps = {
                s: float(self.learner.evaluate(self._val_batch, steps=s)[0].mean()) for s in self.adapt_steps_candidates
            }
            training["adapt_steps"] = min(by_steps, key=lambda s: (by_steps[s], s))
            metrics["val_loss_by_adapt_steps"] = {str(s): v for s, v in by_steps.items()}
        return MetaArtifact(
            self.learner, task_family=self.tasks.describe(), training=training, metrics=metrics, seed=self.seed
        )
