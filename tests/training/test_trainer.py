"""MetaTrainer: determinism, validation, checkpoints and exact resume (also after SIGKILL), guards."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import automl_meta as am
from automl_meta.training import Callback, EarlyStopping
from automl_meta.training import checkpoint as ckpt


def trainer(learner_cls=am.learners.MAML, *, iterations=40, seed=0, tasks=None, **kw):
    kw = {"meta_batch_size": 5, "eval_every": 10, "n_validation_tasks": 10, "verbose": 0, **kw}
    learner = learner_cls(am.models.MLP([16, 16]))
    return am.MetaTrainer(learner, tasks or am.tasks.Sinusoid(shots=5), iterations=iterations, seed=seed, **kw)


def state(artifact):
    return artifact.learner.state_dict()


def assert_same(a, b):
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_result_and_other_seed_differs():
    a, b, c = trainer().fit(), trainer().fit(), trainer(seed=1).fit()
    assert_same(state(a), state(b))
    assert not torch.equal(state(a)["model.layers.0.weight"], state(c)["model.layers.0.weight"])


def test_best_validation_parameters_are_kept():
    t = trainer(iterations=60)
    artifact = t.fit()
    losses = [h["val_loss"] for h in t.history_]
    assert [h["iteration"] for h in t.history_] == [10, 20, 30, 40, 50, 60]
    assert artifact.metrics["val_loss"] == min(losses)
    assert artifact.metrics["best_iteration"] == t.history_[int(np.argmin(losses))]["iteration"]
    # The returned parameters are the best ones: re-evaluating them gives the best loss again.
    again = float(artifact.learner.evaluate(t._val_batch)[0].mean())
    assert again == pytest.approx(min(losses), rel=1e-6)


class StopAt(Callback):
    def __init__(self, iteration):
        self.iteration = iteration

    def on_iteration_end(self, trainer, iteration, logs):
        if iteration == self.iteration:
            trainer.stop_training = True


@pytest.mark.parametrize("learner_cls", [am.learners.MAML, am.learners.MetaSGD, am.learners.Reptile])
def test_stopped_run_resumes_to_the_uninterrupted_result(tmp_path, learner_cls):
    reference = trainer(learner_cls, iterations=50).fit()
    kw = {"checkpoint_dir": tmp_path / "run", "checkpoint_every": 7}
    stopped = trainer(learner_cls, iterations=50, callbacks=[StopAt(23)], **kw)
    stopped.fit()
    assert stopped.iteration == 23 and (tmp_path / "run" / "last.ckpt").exists()
    resumed = trainer(learner_cls, iterations=50, resume=True, **kw)
    artifact = resumed.fit()
    assert_same(state(reference), state(artifact))
    assert [h["iteration"] for h in resumed.history_] == [10, 20, 30, 40, 50]
    # The smoothed training loss is part of the checkpoint: the resumed history reads as the uninterrupted one.
    uninterrupted = trainer(learner_cls, iterations=50)
    uninterrupted.fit()
    assert resumed.history_ == uninterrupted.history_


SCRIPT = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(1)
    import automl_meta as am
    from automl_meta.training import Callback

    class Slow(Callback):
        def on_iteration_end(self, trainer, iteration, logs):
            time.sleep(0.01)

    run_dir, out, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    learner = am.learners.MetaSGD(am.models.MLP([16, 16]))
    artifact = am.MetaTrainer(learner, am.tasks.Sinusoid(shots=5), meta_batch_size=5, iterations=300,
                              eval_every=25, n_validation_tasks=10, checkpoint_dir=run_dir,
                              checkpoint_every=10, resume=resume, callbacks=[Slow()], seed=7, verbose=0).fit()
    artifact.save(out)
""")


def test_sigkilled_run_resumes_to_identical_parameters(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = lambda run_dir, out, resume: subprocess.run(  # noqa: E731 - short local helper
        [sys.executable, str(script), str(run_dir), str(out), resume],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(killed_dir), str(tmp_path / "never.ameta"), "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not (killed_dir / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.35)  # land the kill between checkpoints
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    at_kill = ckpt.load(killed_dir / "last.ckpt")["record"]["iteration"]
    assert 0 < at_kill < 300

    resumed = run(killed_dir, tmp_path / "resumed.ameta", "1")
    assert resumed.returncode == 0, resumed.stderr
    reference = run(tmp_path / "reference", tmp_path / "reference.ameta", "0")
    assert reference.returncode == 0, reference.stderr
    a, b = am.load(tmp_path / "resumed.ameta"), am.load(tmp_path / "reference.ameta")
    assert_same(state(a), state(b))
    assert a.metrics == b.metrics


def test_existing_run_is_not_overwritten_without_resume(tmp_path):
    trainer(iterations=20, checkpoint_dir=tmp_path, checkpoint_every=10).fit()
    before = (tmp_path / "last.ckpt").read_bytes()
    with pytest.raises(am.CheckpointError, match="already holds a run.*resume=True"):
        trainer(iterations=20, checkpoint_dir=tmp_path).fit()
    assert (tmp_path / "last.ckpt").read_bytes() == before


def test_resume_with_other_settings_is_refused(tmp_path):
    trainer(iterations=20, checkpoint_dir=tmp_path).fit()
    with pytest.raises(
        am.CheckpointError,
        match=r"different configuration.*trainer\.meta_batch_size: "
        r"checkpoint 5, now 6",
    ):
        trainer(iterations=20, checkpoint_dir=tmp_path, resume=True, meta_batch_size=6).fit()
    with pytest.raises(am.CheckpointError, match="different configuration.*learner"):
        trainer(am.learners.MetaSGD, iterations=20, checkpoint_dir=tmp_path, resume=True).fit()


def test_truncated_checkpoint_is_refused(tmp_path):
    trainer(iterations=20, checkpoint_dir=tmp_path).fit()
    path = tmp_path / "last.ckpt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(am.CheckpointError, match="last.ckpt.*corrupt or truncated"):
        trainer(iterations=20, checkpoint_dir=tmp_path, resume=True).fit()


class NaNTargets(am.tasks.Sinusoid):
    """Sinusoid tasks whose targets are NaN in the batches chosen by ``bad``."""

    def __init__(self, bad, **kw):
        super().__init__(**kw)
        self.bad, self.calls = bad, 0

    def sample(self, n_tasks, rng=None):
        batch = super().sample(n_tasks, rng)
        self.calls += 1
        if self.bad(self.calls):
            batch = dataclasses.replace(batch, y_query=torch.full_like(batch.y_query, float("nan")))
        return batch


def test_nonfinite_meta_losses_are_skipped_and_counted():
    # Call 1 draws the validation tasks; training batches follow.
    t = trainer(iterations=30, tasks=NaNTargets(lambda call: call > 1 and call % 3 == 0, shots=5))
    artifact = t.fit()
    assert t.n_skipped_ == 10 and artifact.metrics["skipped_updates"] == 10
    assert all(torch.isfinite(v).all() for v in state(artifact).values())


def test_persistent_nonfinite_meta_losses_stop_with_advice():
    t = trainer(iterations=30, max_nonfinite=4, tasks=NaNTargets(lambda call: call > 1, shots=5))
    with pytest.raises(am.MetaTrainingError, match="NaN/inf for 5 iterations in a row.*Lower outer_lr"):
        t.fit()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"meta_batch_size": 0}, ValueError, "meta_batch_size must be a positive integer"),
        ({"iterations": -1}, ValueError, "iterations must be a positive integer"),
        ({"outer_optimizer": "rmsprop"}, ValueError, "outer_optimizer must be one of"),
        ({"resume": True}, ValueError, "resume=True needs a checkpoint_dir"),
        ({"seed": -1}, ValueError, "seed must be a non-negative integer"),
        ({"outer_lr": float("nan")}, ValueError, "outer_lr must be a positive finite number"),
        ({"dtype": torch.float16}, ValueError, "dtype must be"),
    ],
)
def test_bad_options(kwargs, error, message):
    with pytest.raises(error, match=message):
        trainer(**kwargs)


def test_bad_learner_or_tasks():
    with pytest.raises(TypeError, match="learner must be an automl_meta Learner"):
        am.MetaTrainer(torch.nn.Linear(1, 1), am.tasks.Sinusoid())
    with pytest.raises(TypeError, match="tasks must be a TaskDistribution"):
        am.MetaTrainer(am.learners.MAML(am.models.MLP()), [(np.zeros((3, 1)), np.zeros(3))])
    with pytest.raises(TypeError, match="unexpected keyword argument 'meta_batch'"):
        am.MetaTrainer(am.learners.MAML(am.models.MLP()), am.tasks.Sinusoid(), meta_batch=3)


@pytest.mark.parametrize(
    "learner_cls",
    [am.learners.MAML, am.learners.FirstOrderMAML, am.learners.MetaSGD, am.learners.Reptile, am.learners.ANIL],
)
def test_every_learner_learns_the_sinusoid_family(learner_cls):
    kw = {"inner_steps": 5, "inner_lr": 0.02} if learner_cls is am.learners.Reptile else {}
    learner = learner_cls(am.models.MLP([32, 32]), **kw)
    t = am.MetaTrainer(
        learner,
        am.tasks.Sinusoid(shots=10),
        meta_batch_size=10,
        iterations=400,
        eval_every=400,
        n_validation_tasks=50,
        verbose=0,
        seed=0,
    )
    t._setup()
    before = float(learner.evaluate(t._val_batch)[0].mean())
    t.fit()
    assert t.history_[-1]["val_loss"] < 0.7 * before


def test_adapting_to_a_new_task_improves_its_fit():
    artifact = am.MetaTrainer(
        am.learners.MetaSGD(am.models.MLP([40, 40])),
        am.tasks.Sinusoid(shots=10),
        iterations=1000,
        n_validation_tasks=0,
        verbose=0,
    ).fit()
    rng = np.random.default_rng(5)
    x, grid = rng.uniform(-5, 5, (10, 1)), np.linspace(-5, 5, 100)[:, None]
    f = lambda x: 3.0 * np.sin(x[:, 0] - 1.0)  # noqa: E731 - short local helper
    unadapted = artifact.adapt(x, f(x), steps=0).predict(grid)
    adapted = artifact.adapt(x, f(x), steps=5).predict(grid)
    assert np.mean((adapted - f(grid)) ** 2) < 0.5 * np.mean((unadapted - f(grid)) ** 2)


def test_progress_bar_is_silent_with_verbose_0(capsys):
    trainer(iterations=5).fit()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_early_stopping_stops_before_the_last_iteration():
    t = trainer(iterations=1000, eval_every=1, callbacks=[EarlyStopping(patience=1, min_delta=1e9)])
    t.fit()
    assert t.iteration == 2  # the first validation sets the best, the second cannot improve by 1e9


def test_adapt_steps_candidates_pick_the_best_on_validation_tasks():
    t = trainer(am.learners.MAML, iterations=30, adapt_steps_candidates=(1, 3, 6))
    artifact = t.fit()
    by_steps = artifact.metrics["val_loss_by_adapt_steps"]
    assert set(by_steps) == {"1", "3", "6"}
    assert artifact.training["adapt_steps"] == int(min(by_steps, key=by_steps.get))
    for steps, loss in by_steps.items():
        assert loss == pytest.approx(float(artifact.learner.evaluate(t._val_batch, steps=int(steps))[0].mean()))
    with pytest.raises(ValueError, match="needs validation tasks"):
        trainer(adapt_steps_candidates=(1,), n_validation_tasks=0)
