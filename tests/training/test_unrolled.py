"""UnrolledTrainer: learned optimizers improve with meta-training; exact resume; the ES estimator; guards."""

from __future__ import annotations

import pytest
import torch

import automl_meta as am
from automl_meta.exceptions import CheckpointError
from automl_meta.learners import HyperController, MLPOptimizer
from automl_meta.tasks import OptimizeeTasks
from automl_meta.training import UnrolledTrainer


def trainer(rule=None, **kw):
    kw = {
        "meta_batch_size": 4,
        "episodes": 4,
        "horizon": 20,
        "unroll": 10,
        "eval_every": 2,
        "n_validation_batches": 1,
        "validation_horizon": 40,
        "verbose": 0,
        **kw,
    }
    return UnrolledTrainer(rule or HyperController(seed=0), OptimizeeTasks(widths=(4, 8), shots=(16, 32)), **kw)


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_meta_training_improves_the_validation_loss():
    t = trainer(HyperController(seed=0), episodes=12, eval_every=4, outer_lr=1e-2)
    t._setup()
    before = t.validate()
    artifact = t.fit()
    assert artifact.metrics["val_loss"] < before - 0.05
    assert [h["episode"] for h in t.history_] == [4, 8, 12]
    assert artifact.training["estimator"] == "tbptt" and artifact.training["horizon"] == 20


def test_same_seed_same_rule_and_resume_matches_an_uninterrupted_run(tmp_path):
    full = trainer(MLPOptimizer(seed=0)).fit()
    again = trainer(MLPOptimizer(seed=0)).fit()
    assert same_weights(full.learner, again.learner)
    trainer(MLPOptimizer(seed=0), episodes=2, checkpoint_dir=tmp_path, resume=True).fit()  # "killed" after 2
    resumed = trainer(MLPOptimizer(seed=0), checkpoint_dir=tmp_path, resume=True).fit()
    assert same_weights(full.learner, resumed.learner)
    assert (tmp_path / "artifact.ameta").is_file()
    with pytest.raises(CheckpointError, match="resume=True"):
        trainer(MLPOptimizer(seed=0), checkpoint_dir=tmp_path).fit()
    with pytest.raises(CheckpointError, match="different configuration"):
        trainer(MLPOptimizer(seed=0), checkpoint_dir=tmp_path, resume=True, horizon=40).fit()


def test_es_estimate_points_the_same_way_as_backpropagation():
    t = trainer(HyperController(hidden_size=4, seed=0), es_pairs=64, es_sigma=0.01, meta_batch_size=4)
    t._setup()
    batch = t.problems.sample(4, 3)
    states = am.engine.batched_init_states(t.rule, batch.params)
    initial = torch.vmap(batch.loss)(batch.params, batch.train)
    t._tbptt(batch, batch.params, states, 1, initial)
    bptt = torch.cat([p.grad.flatten() for p in t.rule.parameters()])
    t.optimizer.zero_grad(set_to_none=True)
    t._es(batch, batch.params, states, 1, initial, iteration=0)
    es = torch.cat([p.grad.flatten() for p in t.rule.parameters()])
    cosine = float(torch.nn.functional.cosine_similarity(bptt, es, dim=0))
    assert cosine > 0.2


def test_es_meta_training_runs_end_to_end():
    artifact = trainer(HyperController(seed=0), estimator="es", es_pairs=2, episodes=2).fit()
    assert artifact.training["estimator"] == "es" and artifact.metrics["skipped_updates"] == 0


def test_sparse_updates_train_through_the_whole_horizon_and_update_after_some_truncations(monkeypatch):
    t = trainer(HyperController(seed=0), horizon=40, unroll=5, updates_per_episode=3, episodes=3)
    seen = []
    real = UnrolledTrainer._truncation_loss

    def spy(self, batch, params, states, first_step, initial, weights=None):
        seen.append((self.episode, first_step, torch.is_grad_enabled()))
        return real(self, batch, params, states, first_step, initial, weights)

    monkeypatch.setattr(UnrolledTrainer, "_truncation_loss", spy)
    artifact = t.fit()
    assert artifact.training["updates_per_episode"] == 3
    assert int(t.optimizer.state_dict()["state"][0]["step"]) == 3 * 3  # outer steps: 3 per episode
    for episode in range(3):
        steps = [(first, grad) for e, first, grad in seen if e == episode]
        assert [first for first, _ in steps] == list(range(1, 40, 5))  # every truncation, in order
        assert sum(grad for _, grad in steps) == 3
    updated = [tuple(first for e, first, grad in seen if e == ep and grad) for ep in range(3)]
    assert len(set(updated)) > 1  # drawn anew for each episode
    assert "updates_per_episode" not in trainer(horizon=40, unroll=5, updates_per_episode=8).config()


def test_bad_settings_are_refused_clearly():
    with pytest.raises(ValueError, match="must divide"):
        trainer(horizon=25, unroll=10)
    with pytest.raises(ValueError, match="exceeds the 2 truncations"):
        trainer(horizon=20, unroll=10, updates_per_episode=3)
    with pytest.raises(ValueError, match="estimator"):
        trainer(estimator="pes?")
    with pytest.raises(TypeError, match="UpdateRule"):
        UnrolledTrainer(am.learners.MAML(am.models.MLP([4])))
    with pytest.raises(ValueError, match="checkpoint_dir"):
        trainer(resume=True)


def test_nonfinite_meta_losses_are_skipped_counted_and_stop_the_run(monkeypatch):
    t = trainer(MLPOptimizer(seed=0), episodes=2, max_nonfinite=3)
    t._setup()
    before = [p.detach().clone() for p in t.rule.parameters()]
    monkeypatch.setattr(t, "_setup", lambda: None)  # keep the counters fit() would reset
    monkeypatch.setattr(t, "_tbptt", lambda batch, params, states, first, initial: (float("nan"), params, states))
    with pytest.raises(am.MetaTrainingError, match="NaN/inf for 4 updates in a row.*shorten unroll"):
        t.fit()
    assert t.n_skipped_ == 4 and all(torch.equal(a, b) for a, b in zip(before, t.rule.parameters()))


def test_under_a_multi_process_group_it_refuses_to_start_instead_of_every_process_writing_checkpoints(monkeypatch):
    from automl_meta.training import distributed, unrolled

    monkeypatch.setattr(unrolled, "current_group", lambda setting: distributed.ProcessGroup(1, 2))
    with pytest.raises(RuntimeError, match="group of 2 processes: start it with python, not torchrun"):
        trainer().fit()
