"""UnrolledTrainer: meta-train a learned optimizer through truncated unrolls of inner training.

Each *episode* draws a batch of training problems (:class:`~automl_meta.tasks.OptimizeeTasks`)
and trains all of them at once (vmapped) with the learned rule for ``horizon`` steps, cut into
truncations of ``unroll`` steps. After each truncation the rule's weights take one outer step on
the truncation's meta-loss (:mod:`._meta_objective`: the mean over tasks and steps of
``log(loss_t / loss_0)``, optionally with a held-out term and mini-batch gradients), estimated
by truncated backpropagation through time, or by evolution strategies (:mod:`._evolution`: ES, or
PES across the truncations of an episode), well-behaved where backpropagated gradients explode.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .._validation import (
    check_fraction,
    check_nonnegative_float,
    check_nonnegative_int,
    check_positive_float,
    check_positive_int,
)
from ..artifacts import MetaArtifact
from ..engine import Params
from ..engine.cooldown import cooldown_scale
from ..engine.learned_update import States, batched_init_states
from ..learners import UpdateRule
from ..tasks import OptimizeeBatch, OptimizeeTasks
from ._evolution import PersistentParticles, es_gradient, perturbation_generator, set_grads, weights_of
from ._meta_objective import (
    Initial,
    MiniBatches,
    check_batch_size,
    check_rule_and_estimator,
    check_truncations,
    initial_losses,
    moved,
    truncation_loss,
    validation_loss,
)
from ._outer_loop import OuterLoop, seeded_rng
from .callbacks import Callback
from .distributed import current_group

ESTIMATORS = ("tbptt", "es", "pes")


class UnrolledTrainer(OuterLoop):
    """Meta-train a learned optimizer (an :class:`~automl_meta.learners.UpdateRule`).

    Parameters
    ----------
    rule : UpdateRule
        E.g. ``HyperController()``, ``MLPOptimizer()`` or ``LSTMOptimizer()``.
    problems : OptimizeeTasks, optional
        Training problems (default ``OptimizeeTasks()``).
    meta_batch_size : int, default=8
        Problems trained at once (vmapped) in each episode.
    episodes : int, default=500
        Number of episodes (each ``horizon // unroll`` outer updates).
    horizon : int, default=100
        Inner training steps of an episode.
    unroll : int, default=20
        Steps per truncation; must divide ``horizon``.
    updates_per_episode : int, optional
        How many of an episode's ``horizon // unroll`` truncations, drawn at random (by seed and
        episode), are followed by an outer update (default all); the others only train the problems,
        without gradients: long horizons cost less per step, and the rule still learns from late ones.
    estimator : {"tbptt", "es", "pes"}, default="tbptt"
        Truncated backpropagation through time, antithetic evolution strategies restarted at each
        truncation, or persistent evolution strategies (:mod:`._evolution`): ES whose perturbed runs
        go on through the whole horizon, an unbiased estimate over runs of thousands of steps.
    es_pairs : int, default=8
        Antithetic perturbation pairs per ES or PES estimate.
    es_sigma : float, default=0.01
        Standard deviation of the ES or PES perturbations. Like backpropagation, they leave frozen
        weights (``requires_grad=False``) alone: freeze part of a trained rule to fine-tune the rest
        (the frozen names are part of the run's settings: ``artifact.training["frozen"]``).
    outer_lr : float, default=1e-3
        Learning rate of the outer Adam optimizer.
    clip_grad_norm : float, default=1.0
        Clip the meta-gradient to this global norm.
    batch_size : int or (int, int), optional
        Inner gradients on mini-batches of this many rows of each task's training data (a range: a
        size drawn log-uniformly per problem batch), as users train; by default the whole training data.
    loss_every : int, default=1
        Steps between the training losses that the meta-loss averages (each on the whole training
        data; a truncation's last step always counts). With mini-batches of large training sets, that
        evaluation at every step is much of the cost: at 10, with training sets of 256 to 1,024 rows and
        mini-batches of 16 to 64, 50-step truncations took 0.46x the time and a whole run 0.81x.
    val_weight : float, default=0.0
        Weight of the held-out term of the meta-loss: ``log(val_t / val_0)`` on each task's held-out
        data after each truncation, so that the rule learns not to overfit.
    cooldown : float, default=0.0
        Inner runs cool down over their last ``cooldown`` fraction of steps (episodes and validation runs)
        as ``LearnedOptimizer(total_steps=...)`` does, so that the rule learns rates for runs that end so.
    n_validation_batches : int, default=4
        Fixed held-out problem batches, trained for ``validation_horizon`` steps at each
        validation; the best rule by mean relative log-loss is kept. 0 turns validation off.
    validation_horizon : int, optional
        Default ``4 * horizon``: longer than training, so the kept rule is one that stays
        good on longer runs.
    eval_every : int, default=25
        Episodes between validations.
    checkpoint_dir : str or Path, optional
    checkpoint_every : int, optional
        Episodes between checkpoints (default: ``eval_every``).
    resume : bool, default=False
        Continue from ``checkpoint_dir/last.ckpt`` when it exists. Checkpoints fall on
        episode boundaries, so a resumed run ends exactly as an uninterrupted one.
    max_nonfinite : int, default=10
        Consecutive non-finite meta-losses or meta-gradients skipped before giving up.
    callbacks : sequence of Callback, optional
        As for :class:`~automl_meta.MetaTrainer`; ``on_iteration_end`` is called after each episode,
        with the episode's mean meta-loss and meta-gradient norm and whether any update was skipped.
    seed : int, default=0
    verbose : int, default=1
    device : {"cpu", "cuda", "mps"} or torch.device, default="cpu"
        Where to meta-train; checkpoints and artifacts are written from, and load to, the CPU.
        The ES perturbations are drawn on the CPU, so a seed gives the same ones on every device.
        ``UnrolledTrainer`` runs in one process: it does not shard episodes under ``torch.distributed``.

    Attributes
    ----------
    history_ : list of dict
        One entry per validation: ``episode``, ``train_loss``, ``val_loss``.
    best_episode_ : int or None
    n_skipped_ : int

    Examples
    --------
    >>> import automl_meta as am
    >>> rule = am.learners.HyperController()
    >>> trainer = am.training.UnrolledTrainer(rule, am.tasks.OptimizeeTasks(), meta_batch_size=2, episodes=2,
    ...                                       horizon=10, unroll=5, eval_every=2, n_validation_batches=1,
    ...                                       verbose=0)
    >>> artifact = trainer.fit()
    >>> artifact.manifest["learner"]["name"], [h["episode"] for h in trainer.history_]
    ('hyper_controller', [2])
    """

    _unit_key, _best_key, _bar_unit = "episode", "best_episode", "ep"
    _batches: MiniBatches | None = None  # the mini-batches of the problem batch being trained
    _smoothing = 0.1

    def __init__(
        self,
        rule: UpdateRule,
        problems: OptimizeeTasks | None = None,
        *,
        meta_batch_size: int = 8,
        episodes: int = 500,
        horizon: int = 100,
        unroll: int = 20,
        updates_per_episode: int | None = None,
        estimator: str = "tbptt",
        es_pairs: int = 8,
        es_sigma: float = 0.01,
        outer_lr: float = 1e-3,
        clip_grad_norm: float = 1.0,
        batch_size: int | tuple[int, int] | None = None,
        val_weight: float = 0.0,
        loss_every: int = 1,
        cooldown: float = 0.0,
        n_validation_batches: int = 4,
        validation_horizon: int | None = None,
        eval_every: int = 25,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
        max_nonfinite: int = 10,
        callbacks: Sequence[Callback] = (),
        seed: int = 0,
        verbose: int = 1,
        device: str | torch.device = "cpu",
    ) -> None:
        check_rule_and_estimator(rule, estimator, ESTIMATORS)
        self.rule = rule
        self.problems = problems if problems is not None else OptimizeeTasks()
        self.meta_batch_size = check_positive_int(meta_batch_size, "meta_batch_size")
        self.episodes = check_positive_int(episodes, "episodes")
        self.horizon, self.unroll, self.updates_per_episode, self.loss_every = check_truncations(
            horizon, unroll, updates_per_episode, estimator, loss_every
        )
        self.estimator = estimator
        self.es_pairs = check_positive_int(es_pairs, "es_pairs")
        self.es_sigma = check_positive_float(es_sigma, "es_sigma")
        self.outer_lr = check_positive_float(outer_lr, "outer_lr")
        self.clip_grad_norm = check_positive_float(clip_grad_norm, "clip_grad_norm")
        self.batch_size = check_batch_size(batch_size)
        self.val_weight = check_nonnegative_float(val_weight, "val_weight")
        self.cooldown = check_fraction(cooldown, "cooldown")
        self.n_validation_batches = check_nonnegative_int(n_validation_batches, "n_validation_batches")
        self.validation_horizon = check_positive_int(validation_horizon or 4 * self.horizon, "validation_horizon")
        self.eval_every = check_positive_int(eval_every, "eval_every")
        self.checkpoint_every = check_positive_int(
            self.eval_every if checkpoint_every is None else checkpoint_every, "checkpoint_every"
        )
        self._set_loop_options(
            checkpoint_dir=checkpoint_dir, resume=resume, max_nonfinite=max_nonfinite, callbacks=callbacks,
            seed=seed, verbose=verbose, device=device,
        )  # fmt: skip

    def config(self) -> dict[str, Any]:
        """The settings that determine the run (stored in checkpoints and artifacts)."""
        return {
            "trainer": "unrolled",
            "meta_batch_size": self.meta_batch_size,
            "episodes": self.episodes,
            "horizon": self.horizon,
            "unroll": self.unroll,
            "estimator": self.estimator,
            "es_pairs": self.es_pairs,
            "es_sigma": self.es_sigma,
            "outer_lr": self.outer_lr,
            "clip_grad_norm": self.clip_grad_norm,
            "n_validation_batches": self.n_validation_batches,
            "validation_horizon": self.validation_horizon,
            "eval_every": self.eval_every,
            "seed": self.seed,
            # Only when set: runs and checkpoints made before these options keep their fingerprints.
            **({"batch_size": list(self.batch_size)} if self.batch_size else {}),
            **({"val_weight": self.val_weight} if self.val_weight else {}),
            **({"loss_every": self.loss_every} if self.loss_every > 1 else {}),
            **({"cooldown": self.cooldown} if self.cooldown else {}),
            **({"updates_per_episode": n} if (n := self.updates_per_episode) < self.horizon // self.unroll else {}),
            **({"frozen": frozen} if (frozen := self._frozen()) else {}),
        }

    def _frozen(self) -> list[str]:
        """The rule's frozen weights (``requires_grad=False``): meta-training leaves them as they are."""
        return [name for name, w in self.rule.named_parameters() if not w.requires_grad]

    def _fingerprint(self) -> dict[str, Any]:
        cfg = {k: v for k, v in self.config().items() if k != "episodes"}
        return {"trainer": cfg, "learner": self.rule.get_config(), "tasks": self.problems.describe()}

    # -- estimators ----------------------------------------------------------------------------------
    def _truncation_loss(
        self,
        batch: OptimizeeBatch,
        params: Params,
        states: States,
        first_step: int,
        initial: Initial,
        weights: Params | None = None,
    ) -> tuple[torch.Tensor, Params, States]:
        return truncation_loss(
            self.rule, batch, params, states, first_step=first_step, steps=self.unroll, initial=initial,
            val_weight=self.val_weight, batches=self._batches, weights=weights, loss_every=self.loss_every,
            scale=(lambda t: cooldown_scale(t, self.horizon, self.cooldown)) if self.cooldown else None,
        )  # fmt: skip

    def _tbptt(
        self, batch: OptimizeeBatch, params: Params, states: States, first_step: int, initial: Initial
    ) -> tuple[float, Params, States]:
        meta_loss, params, states = self._truncation_loss(batch, params, states, first_step, initial)
        if torch.isfinite(meta_loss):
            meta_loss.backward()
        return float(meta_loss.detach()), params, states

    @torch.no_grad()
    def _es(
        self, batch: OptimizeeBatch, params: Params, states: States, first_step: int, initial: Initial, iteration: int
    ) -> tuple[float, Params, States]:
        def loss(weights: Params) -> torch.Tensor:
            return self._truncation_loss(batch, params, states, first_step, initial, weights)[0]

        gen = perturbation_generator(self.seed, iteration)
        grads = es_gradient(loss, weights_of(self.rule), self.es_pairs, self.es_sigma, gen)
        meta_loss, params, states = self._truncation_loss(batch, params, states, first_step, initial)
        set_grads(self.rule, grads)
        return float(meta_loss), params, states

    def _pes(
        self, particles: PersistentParticles, batch: OptimizeeBatch, first_step: int, initial: Initial, iteration: int
    ) -> float:
        def loss(weights: Params, params: Params, states: States) -> tuple[torch.Tensor, Params, States]:
            return self._truncation_loss(batch, params, states, first_step, initial, weights)

        grads, meta_loss = particles.estimate(loss, weights_of(self.rule), perturbation_generator(self.seed, iteration))
        set_grads(self.rule, grads)
        return meta_loss

    # -- hooks of the outer loop -------------------------------------------------------------------------
    @property
    def episode(self) -> int:
        """Episodes done so far."""
        return self._position

    @property
    def best_episode_(self) -> int | None:
        """Episode of the best validation loss (None before the first validation)."""
        return self._best_position

    def _n_planned(self) -> int:
        return self.episodes

    def _trained(self) -> torch.nn.Module:
        return self.rule

    def _setup(self) -> None:
        group = current_group(None)
        if group is not None:  # each process would train alone and write the same checkpoints
            raise RuntimeError(
                "UnrolledTrainer runs in one process, but this one belongs to a torch.distributed group of "
                f"{group.size} processes: start it with python, not torchrun "
                "(MetaTrainer is the trainer that meta-trains across processes)."
            )
        self.rule.to(device=self.device, dtype=torch.float32).train()
        self.optimizer = torch.optim.Adam(self.rule.parameters(), lr=self.outer_lr)
        self._val_batches = [
            moved(self.problems.sample(self.meta_batch_size, seeded_rng(self.seed, 1, i)), self.device)
            for i in range(self.n_validation_batches)
        ]
        self._reset_progress()

    def _outer_step(self, meta_loss: float, iteration: int) -> tuple[bool, float]:
        params = [p for p in self.rule.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm) if params else torch.tensor(math.nan)
        finite = math.isfinite(meta_loss) and bool(torch.isfinite(norm))
        if self._count_update(
            finite, unit="update", last=iteration, advice="Lower outer_lr, shorten unroll, or use estimator='es'."
        ):
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return finite, float(norm)

    def _step(self) -> dict[str, Any]:
        """One episode: ``horizon // unroll`` truncations, each followed by an outer update."""
        batch = moved(self.problems.sample(self.meta_batch_size, seeded_rng(self.seed, 0, self.episode)), self.device)
        params = batch.params
        states = batched_init_states(self.rule, params)
        initial = initial_losses(batch, params)
        self._batches = self._mini_batches(0, self.episode)
        truncations = self.horizon // self.unroll
        updated = self._updated_truncations(truncations)
        particles = PersistentParticles(self.es_pairs, self.es_sigma, params, states)
        losses, norms, skipped = [], [], False
        for k in range(truncations):
            iteration = self.episode * truncations + k
            first_step = k * self.unroll + 1
            if k not in updated:  # only trains the problems on: no meta-gradient, no outer update
                with torch.no_grad():
                    _, params, states = self._truncation_loss(batch, params, states, first_step, initial)
                continue
            if self.estimator == "tbptt":
                meta_loss, params, states = self._tbptt(batch, params, states, first_step, initial)
            elif self.estimator == "es":
                meta_loss, params, states = self._es(batch, params, states, first_step, initial, iteration)
            else:
                meta_loss = self._pes(particles, batch, first_step, initial, iteration)
            finite, norm = self._outer_step(meta_loss, iteration)
            losses.append(meta_loss)
            norms.append(norm)
            skipped = skipped or not finite
            params = {n: p.detach() for n, p in params.items()}
            states = {n: {k2: v.detach() for k2, v in s.items()} for n, s in states.items()}
        return {"loss": float(np.mean(losses)), "grad_norm": float(np.mean(norms)), "skipped": skipped}

    def _updated_truncations(self, truncations: int) -> set[int]:
        """The truncations of this episode followed by an outer update (all, unless fewer were asked for)."""
        if self.updates_per_episode >= truncations:
            return set(range(truncations))
        rng = seeded_rng(self.seed, 5, self.episode)
        return {int(k) for k in rng.choice(truncations, size=self.updates_per_episode, replace=False)}

    def _counts_toward_running(self, logs: dict[str, Any]) -> bool:
        # An episode whose updates were partly skipped still reports its (finite) mean meta-loss.
        return math.isfinite(logs["loss"])

    def _validation_enabled(self) -> bool:
        return self.n_validation_batches > 0

    def _mini_batches(self, *key: int) -> MiniBatches | None:
        return None if self.batch_size is None else MiniBatches(self.batch_size, self.seed, key)

    def _validation_logs(self) -> dict[str, float]:
        """The meta-loss of the rule over the validation problems and ``validation_horizon`` steps."""
        loss = validation_loss(
            self.rule, self._val_batches, steps=self.validation_horizon, val_weight=self.val_weight,
            mini_batches=lambda i: self._mini_batches(1, i), loss_every=self.loss_every, cooldown=self.cooldown,
        )  # fmt: skip
        return {"val_loss": loss}

    def _artifact(self) -> MetaArtifact:
        self.rule.eval()
        metrics = {"val_loss": self._best_val_loss(), "best_episode": self.best_episode_,
                   "episodes_run": self.episode, "skipped_updates": self.n_skipped_}  # fmt: skip
        return MetaArtifact(
            self.rule, task_family=self.problems.describe(), training=self.config(), metrics=metrics, seed=self.seed
        )
