"""ES and PES meta-gradient estimates: PES follows a whole run through its truncations, ES one truncation."""

from __future__ import annotations

import math

import pytest
import torch

from automl_meta.engine import batched_init_states
from automl_meta.exceptions import CheckpointError
from automl_meta.learners import HyperController
from automl_meta.tasks import OptimizeeTasks
from automl_meta.training import UnrolledTrainer
from automl_meta.training._evolution import PersistentParticles, es_gradient

TRUNCATIONS, TARGET = 4, 1.0


def drift(weights, params, states):
    """A run that moves x by w per truncation; a truncation's loss is (x - 1)^2 where it ends."""
    x = params["x"] + weights["w"]
    return ((x - TARGET) ** 2).sum(), {"x": x}, states


def test_pes_estimates_the_gradient_of_the_whole_run_and_per_truncation_es_does_not():
    # From x = 0 with w = 0, the run's loss is sum_k (k w - 1)^2, of gradient sum_k -2k = -20 at w = 0;
    # restarted at each truncation, ES only sees each truncation's own step: sum_k -2 = -8.
    w = {"w": torch.zeros(1, dtype=torch.float64)}
    start = {"x": torch.zeros(1, dtype=torch.float64)}
    gen = torch.Generator().manual_seed(0)
    particles = PersistentParticles(pairs=2000, sigma=0.1, params=start, states={})
    pes, es = 0.0, 0.0
    for k in range(TRUNCATIONS):
        grads, _ = particles.estimate(drift, w, gen)
        pes += float(grads["w"])
        here = {"x": torch.full((1,), float(k), dtype=torch.float64) * w["w"]}
        es += float(es_gradient(lambda v, here=here: drift(v, here, {})[0], w, 2000, 0.1, gen)["w"])
    assert pes == pytest.approx(-20.0, rel=0.1)
    assert es == pytest.approx(-8.0, rel=0.1)


def test_pes_skips_pairs_with_nonfinite_losses_and_reports_their_mean_loss():
    def blows_up(weights, params, states):
        value, params, states = drift(weights, params, states)
        return (value if float(weights["w"]) > 0 else torch.tensor(math.nan)), params, states

    particles = PersistentParticles(pairs=3, sigma=0.5, params={"x": torch.zeros(1)}, states={})
    grads, mean = particles.estimate(blows_up, {"w": torch.zeros(1)}, torch.Generator().manual_seed(1))
    assert torch.equal(grads["w"], torch.zeros(1)) and math.isnan(mean)  # every pair has one member w < 0


def trainer(**kw):
    kw = {"meta_batch_size": 4, "episodes": 2, "horizon": 20, "unroll": 5, "eval_every": 2, **kw}
    return UnrolledTrainer(
        HyperController(hidden_size=4, seed=0),
        OptimizeeTasks(widths=(4, 8), shots=(16, 32)),
        n_validation_batches=1,
        validation_horizon=40,
        verbose=0,
        **kw,
    )


def test_pes_estimate_points_the_way_of_backpropagation_through_the_whole_run():
    t = trainer(estimator="pes", es_pairs=64)
    t._setup()
    batch = t.problems.sample(4, 3)
    start = (batch.params, batched_init_states(t.rule, batch.params))
    initial = torch.vmap(batch.loss)(batch.params, batch.train), torch.vmap(batch.loss)(batch.params, batch.val)
    # Backpropagation through all 4 truncations at once: the gradient PES estimates (not truncated).
    total, (params, states) = 0.0, start
    for k in range(TRUNCATIONS):
        loss, params, states = t._truncation_loss(batch, params, states, k * t.unroll + 1, initial)
        total = total + loss
    total.backward()
    exact = torch.cat([p.grad.flatten() for p in t.rule.parameters()])
    t.optimizer.zero_grad(set_to_none=True)
    particles, estimate = PersistentParticles(64, 0.01, *start), torch.zeros_like(exact)
    for k in range(TRUNCATIONS):
        t._pes(particles, batch, k * t.unroll + 1, initial, iteration=k)
        estimate += torch.cat([p.grad.flatten() for p in t.rule.parameters()])
    assert float(torch.nn.functional.cosine_similarity(exact, estimate, dim=0)) > 0.3


def test_pes_meta_training_runs_end_to_end_and_resumes_exactly(tmp_path):
    full = trainer(estimator="pes", es_pairs=2, episodes=2).fit()
    assert full.training["estimator"] == "pes" and full.metrics["skipped_updates"] == 0
    untrained = HyperController(hidden_size=4, seed=0)
    assert not all(torch.equal(a, b) for a, b in zip(full.learner.parameters(), untrained.parameters()))
    trainer(estimator="pes", es_pairs=2, episodes=1, checkpoint_dir=tmp_path, checkpoint_every=1, resume=True).fit()
    resumed = trainer(estimator="pes", es_pairs=2, episodes=2, checkpoint_dir=tmp_path, resume=True).fit()
    assert all(torch.equal(a, b) for a, b in zip(full.learner.parameters(), resumed.learner.parameters()))


@pytest.mark.parametrize("estimator", ["es", "pes"])
def test_evolution_strategies_leave_frozen_weights_alone(estimator):
    t = trainer(estimator=estimator, es_pairs=2, episodes=1)
    before = {k: v.detach().clone() for k, v in t.rule.named_parameters()}
    for name, weight in t.rule.named_parameters():
        weight.requires_grad_(name.startswith("head."))
    after = dict(t.fit().learner.named_parameters())
    assert all(torch.equal(after[k], v) != k.startswith("head.") for k, v in before.items())


def test_frozen_weights_are_recorded_and_a_resume_with_others_frozen_is_refused(tmp_path):
    def frozen_trainer(prefix, **kw):
        t = trainer(estimator="pes", es_pairs=2, checkpoint_dir=tmp_path, checkpoint_every=1, resume=True, **kw)
        for name, weight in t.rule.named_parameters():
            weight.requires_grad_(not name.startswith(prefix))
        return t

    artifact = frozen_trainer("input_map.", episodes=1).fit()
    assert artifact.training["frozen"] == ["input_map.weight", "input_map.bias"]
    assert "frozen" not in trainer().config()  # nothing frozen: the fingerprints of earlier runs are kept
    with pytest.raises(CheckpointError, match="different configuration"):
        frozen_trainer("head.").fit()


def test_pes_refuses_sparse_updates():
    with pytest.raises(ValueError, match="updates_per_episode"):
        trainer(estimator="pes", updates_per_episode=2)
