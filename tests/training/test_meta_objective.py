"""Mini-batch gradients and the held-out term of the learned optimizers' meta-objective."""

from __future__ import annotations

import pytest
import torch

from automl_meta.engine.learned_update import batched_init_states, batched_unroll
from automl_meta.learners import HyperController
from automl_meta.tasks import OptimizeeTasks
from automl_meta.training import UnrolledTrainer
from automl_meta.training._meta_objective import (
    MiniBatches,
    initial_losses,
    relative_log_losses,
    truncation_loss,
)


def mlp_batch(seed=0, n=3):
    return OptimizeeTasks(quadratic_fraction=0.0, widths=(4, 8), shots=(16, 40)).sample(n, rng=seed)


def test_a_minibatch_draws_distinct_real_rows_of_each_task():
    batch = mlp_batch()
    real = batch.train["mask"].sum(1)
    part = batch.minibatch(12, torch.Generator().manual_seed(0))
    assert part["x"].shape[:2] == (3, 12) and part["y"].shape[:2] == (3, 12)
    assert torch.equal(part["class_mask"], batch.train["class_mask"])  # not a row key: whole
    for t in range(3):
        rows = {tuple(r.tolist()) for r in part["x"][t]}
        assert len(rows) == 12  # without replacement
        source = {tuple(r.tolist()) for r, m in zip(batch.train["x"][t], batch.train["mask"][t]) if m > 0}
        assert rows <= source  # real rows only, while the task has enough
        assert real[t] >= 12
    again = batch.minibatch(12, torch.Generator().manual_seed(0))
    assert torch.equal(again["x"], part["x"])
    other = batch.minibatch(12, torch.Generator().manual_seed(1))
    assert not torch.equal(other["x"], part["x"])
    assert batch.minibatch(10_000, torch.Generator()) is batch.train


def test_quadratics_draw_rows_of_a_and_b_together():
    batch = OptimizeeTasks(quadratic_fraction=1.0, quadratic_dims=(8, 8)).sample(2, rng=0)
    part = batch.minibatch(3, torch.Generator().manual_seed(0))
    assert part["A"].shape == (2, 3, 8) and part["b"].shape == (2, 3)
    for t in range(2):
        for row, b in zip(part["A"][t], part["b"][t]):
            i = int((batch.train["A"][t] == row).all(1).nonzero())
            assert batch.train["b"][t, i] == b


def test_unrolling_on_minibatches_records_whole_data_losses_and_differs_from_full_batch():
    batch = mlp_batch()
    rule = HyperController(seed=0).requires_grad_(False)
    states = batched_init_states(rule, batch.params)
    full = batched_unroll(rule, batch.loss, batch.params, states, batch.train, first_step=1, steps=5)[0]
    same = batched_unroll(
        rule, batch.loss, batch.params, states, batch.train, first_step=1, steps=5, grad_data=lambda t: batch.train
    )[0]
    assert torch.equal(full, same)
    batches = MiniBatches((4, 4), seed=0, key=(0,))
    on_batches = lambda t: batches(batch, t)  # noqa: E731 - short local helper
    mini = batched_unroll(
        rule, batch.loss, batch.params, states, batch.train, first_step=1, steps=5, grad_data=on_batches
    )[0]
    assert torch.equal(mini[0], full[0]) and not torch.allclose(mini[1:], full[1:])
    assert torch.equal(mini[0], torch.vmap(batch.loss)(batch.params, batch.train))


def test_recording_every_kth_loss_keeps_those_losses_and_the_trajectory():
    batch = mlp_batch()
    rule = HyperController(seed=0).requires_grad_(False)
    states = batched_init_states(rule, batch.params)
    batches = MiniBatches((4, 8), seed=0, key=(0,))
    kw = {"first_step": 1, "steps": 7, "grad_data": lambda t: batches(batch, t)}
    full, params, _ = batched_unroll(rule, batch.loss, batch.params, states, batch.train, **kw)
    sparse, params3, _ = batched_unroll(rule, batch.loss, batch.params, states, batch.train, loss_every=3, **kw)
    assert full.shape[0] == 8 and sparse.shape[0] == 4  # before the first step, after steps 3, 6 and the last
    assert torch.equal(sparse, full[[0, 3, 6, 7]])
    assert all(torch.equal(params[k], params3[k]) for k in params)  # the same training run
    initial = initial_losses(batch, batch.params)
    meta = lambda every: truncation_loss(  # noqa: E731 - short local helper
        rule, batch, batch.params, states, first_step=1, steps=7, initial=initial, batches=batches, loss_every=every
    )[0]
    assert torch.allclose(meta(3), relative_log_losses(full[[3, 6, 7]], initial[0]).mean())
    assert torch.allclose(meta(1), relative_log_losses(full[1:], initial[0]).mean())
    assert not torch.allclose(meta(3), meta(1))


def test_minibatch_sizes_are_drawn_in_range_and_depend_only_on_seed_and_key():
    sizes = [MiniBatches((4, 64), seed=0, key=(0, e)).size for e in range(200)]
    assert min(sizes) >= 4 and max(sizes) <= 64 and len(set(sizes)) > 20
    assert sizes == [MiniBatches((4, 64), seed=0, key=(0, e)).size for e in range(200)]
    assert sum(s <= 16 for s in sizes) > 60  # log-uniform: half the draws below the geometric middle


def test_the_held_out_term_adds_its_weighted_relative_log_loss():
    batch = mlp_batch()
    rule = HyperController(seed=0).requires_grad_(False)
    states = batched_init_states(rule, batch.params)
    initial = initial_losses(batch, batch.params)
    kw = {"first_step": 1, "steps": 4, "initial": initial}
    plain, params, _ = truncation_loss(rule, batch, batch.params, states, **kw)
    with_val, params2, _ = truncation_loss(rule, batch, batch.params, states, val_weight=0.5, **kw)
    val = torch.vmap(batch.loss)(params, batch.val)
    expected = plain + 0.5 * relative_log_losses(val[None], initial[1]).mean()
    assert torch.allclose(with_val, expected) and all(torch.equal(params[k], params2[k]) for k in params)
    with pytest.raises(ValueError, match="val_weight"):
        truncation_loss(rule, batch, batch.params, states, val_weight=-1.0, **kw)


def make_trainer(**kw):
    return UnrolledTrainer(
        HyperController(hidden_size=4, seed=0),
        OptimizeeTasks(widths=(4, 8), shots=(16, 32)),
        **{"meta_batch_size": 2, "episodes": 2, "horizon": 10, "unroll": 5, "eval_every": 2,
           "n_validation_batches": 1, "validation_horizon": 10, "verbose": 0, **kw},
    )  # fmt: skip


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("estimator", ["tbptt", "es"])
def test_minibatch_meta_training_is_reproducible_and_differs_from_full_batch(estimator):
    kw = {"batch_size": (4, 8), "val_weight": 0.3, "estimator": estimator, "es_pairs": 2}
    a, b = make_trainer(**kw).fit(), make_trainer(**kw).fit()
    assert same_weights(a.learner, b.learner)
    full = make_trainer(estimator=estimator, es_pairs=2).fit()
    assert not same_weights(a.learner, full.learner)
    assert a.training["batch_size"] == [4, 8] and a.training["val_weight"] == 0.3


def test_new_options_stay_out_of_the_config_unless_set_and_bad_ones_are_refused():
    config = make_trainer().config()
    assert "batch_size" not in config and "val_weight" not in config  # older runs keep their fingerprints
    assert make_trainer(batch_size=16).config()["batch_size"] == [16, 16]
    for bad in (0, (8, 4), 2.5, (1, 2, 3)):
        with pytest.raises(ValueError, match="batch_size"):
            make_trainer(batch_size=bad)
    with pytest.raises(ValueError, match="val_weight"):
        make_trainer(val_weight=-0.1)
    assert "loss_every" not in config and make_trainer(loss_every=5).config()["loss_every"] == 5
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match="loss_every"):
            make_trainer(loss_every=bad)


def test_a_sparser_training_term_is_recorded_and_changes_what_is_learned():
    kw = {"batch_size": (4, 8), "estimator": "es", "es_pairs": 2}
    sparse, full = make_trainer(loss_every=5, **kw).fit(), make_trainer(**kw).fit()
    assert sparse.training["loss_every"] == 5 and "loss_every" not in full.training
    assert not same_weights(sparse.learner, full.learner)
