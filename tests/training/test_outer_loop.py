"""The outer loop both trainers share: callbacks, validate(), stopping, checkpoint contents and resume."""

from __future__ import annotations

import math

import pytest
import torch

import automl_meta as am
from automl_meta.training import Callback, MetaTrainer, UnrolledTrainer
from automl_meta.training import checkpoint as ckpt
from automl_meta.training._outer_loop import OuterLoop


def meta_trainer(**kw) -> MetaTrainer:
    kw = {"meta_batch_size": 3, "iterations": 6, "eval_every": 3, "n_validation_tasks": 5, "verbose": 0, **kw}
    return MetaTrainer(am.learners.MAML(am.models.MLP([8])), am.tasks.Sinusoid(shots=5), **kw)


def unrolled_trainer(**kw) -> UnrolledTrainer:
    kw = {
        "meta_batch_size": 2,
        "episodes": 6,
        "horizon": 10,
        "unroll": 5,
        "eval_every": 3,
        "n_validation_batches": 1,
        "validation_horizon": 10,
        "verbose": 0,
        **kw,
    }
    return UnrolledTrainer(am.learners.HyperController(seed=0), am.tasks.OptimizeeTasks(widths=4, shots=16), **kw)


TRAINERS = {"meta": (meta_trainer, "iteration"), "unrolled": (unrolled_trainer, "episode")}


class Recorder(Callback):
    """Records every hook call; stops the run at ``stop_at`` when given."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[tuple] = []
        self.stop_at = stop_at

    def on_fit_start(self, trainer: OuterLoop) -> None:
        self.calls.append(("fit_start",))

    def on_iteration_end(self, trainer: OuterLoop, iteration: int, logs: dict) -> None:
        self.calls.append(("iteration_end", iteration, logs))
        if iteration == self.stop_at:
            trainer.stop_training = True

    def on_validation_end(self, trainer: OuterLoop, iteration: int, logs: dict) -> None:
        self.calls.append(("validation_end", iteration, logs))

    def on_fit_end(self, trainer: OuterLoop) -> None:
        self.calls.append(("fit_end",))


@pytest.mark.parametrize("kind", sorted(TRAINERS))
def test_callbacks_fire_the_same_way_in_both_trainers(kind):
    make, unit = TRAINERS[kind]
    rec = Recorder()
    trainer = make(callbacks=[rec])
    trainer.fit()
    assert [c[0] for c in rec.calls] == [
        "fit_start",
        *["iteration_end"] * 3,
        "validation_end",
        *["iteration_end"] * 3,
        "validation_end",
        "fit_end",
    ]
    assert [c[1] for c in rec.calls if c[0] == "iteration_end"] == [1, 2, 3, 4, 5, 6]
    for _, _, logs in (c for c in rec.calls if c[0] == "iteration_end"):
        assert {"loss", "grad_norm", "skipped"} <= logs.keys() and logs["skipped"] is False
        assert math.isfinite(logs["loss"]) and math.isfinite(logs["grad_norm"])
    validations = [c for c in rec.calls if c[0] == "validation_end"]
    assert [c[1] for c in validations] == [3, 6]
    for (_, position, logs), entry in zip(validations, trainer.history_):
        assert logs == {**entry, "best": logs["best"]} and entry[unit] == position
        assert {"train_loss", "val_loss"} <= entry.keys()
    assert validations[0][2]["best"] is True


@pytest.mark.parametrize("kind", sorted(TRAINERS))
def test_validate_exists_in_both_and_returns_the_mean_validation_loss(kind):
    make, _ = TRAINERS[kind]
    trainer = make()
    with pytest.raises(RuntimeError, match="call fit"):
        trainer.validate()
    artifact = trainer.fit()
    val = trainer.validate()  # the best weights are loaded after fit(): their loss is the best one
    assert isinstance(val, float) and val == artifact.metrics["val_loss"] == trainer.best_loss_
    off = make(**{"n_validation_tasks" if kind == "meta" else "n_validation_batches": 0})
    off.fit()
    with pytest.raises(RuntimeError, match="Validation is off"):
        off.validate()


@pytest.mark.parametrize("kind", sorted(TRAINERS))
def test_a_stopped_run_checkpoints_and_resumes_to_the_uninterrupted_result(kind, tmp_path):
    make, unit = TRAINERS[kind]
    reference = make()
    expected = reference.fit()
    stopped = make(checkpoint_dir=tmp_path, callbacks=[Recorder(stop_at=4)])
    stopped.fit()
    record = ckpt.load(tmp_path / "last.ckpt")["record"]
    assert record[unit] == 4 == getattr(stopped, unit)
    assert {
        unit,
        f"best_{unit}",
        "best_loss",
        "n_skipped",
        "consecutive_bad",
        "history",
        "running_loss",
        "fingerprint",
    } <= record.keys()
    resumed = make(checkpoint_dir=tmp_path, resume=True)
    artifact = resumed.fit()
    a, b = artifact.learner.state_dict(), expected.learner.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert artifact.metrics == expected.metrics
    # The running training loss is checkpointed in both: the resumed history reads as the uninterrupted one.
    assert resumed.history_ == reference.history_


def test_unrolled_checkpoints_follow_checkpoint_every(tmp_path):
    seen = []

    class Spy(Callback):
        def on_iteration_end(self, trainer, iteration, logs):
            path = tmp_path / "last.ckpt"
            seen.append(ckpt.load(path)["record"]["episode"] if path.exists() else None)

    unrolled_trainer(checkpoint_dir=tmp_path, checkpoint_every=2, callbacks=[Spy()]).fit()
    # on_iteration_end runs before that step's checkpoint is written
    assert seen == [None, None, 2, 2, 4, 4]
    with pytest.raises(ValueError, match="checkpoint_every"):
        unrolled_trainer(checkpoint_every=-1)
