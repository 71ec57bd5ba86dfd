"""Meta-training runs that cool down as ``LearnedOptimizer(total_steps=...)`` does."""

from __future__ import annotations

import pytest
import torch

from automl_meta.engine.cooldown import cooldown_scale
from automl_meta.engine.learned_update import batched_init_states, batched_unroll
from automl_meta.learners import HyperController
from automl_meta.optim import LearnedOptimizer
from automl_meta.tasks import OptimizeeTasks
from automl_meta.training import UnrolledTrainer


def make_trainer(**kw):
    return UnrolledTrainer(
        HyperController(hidden_size=4, seed=0),
        OptimizeeTasks(widths=(4, 8), shots=(16, 32)),
        **{"meta_batch_size": 2, "episodes": 2, "horizon": 10, "unroll": 5, "eval_every": 2,
           "n_validation_batches": 1, "validation_horizon": 10, "verbose": 0, "estimator": "es", "es_pairs": 2,
           **kw},
    )  # fmt: skip


def test_an_unroll_that_cools_down_trains_as_the_optimizer_told_the_length():
    total, fraction = 12, 0.5
    gen = torch.Generator().manual_seed(0)
    X, y = torch.randn(32, 3, generator=gen), torch.randn(32, generator=gen)
    start = {"w": torch.randn(3, generator=gen), "b": torch.zeros(())}
    loss = lambda p, d: ((d["X"] @ p["w"] + p["b"] - d["y"]) ** 2).mean()  # noqa: E731 - short local helper
    rule = HyperController(seed=0).requires_grad_(False)
    batched = {k: v[None] for k, v in start.items()}
    data = {"X": X[None], "y": y[None]}

    def unroll(scale):
        return batched_unroll(
            rule, loss, batched, batched_init_states(rule, batched), data, first_step=1, steps=total, scale=scale
        )[1]

    cooled = unroll(lambda t: cooldown_scale(t, total, fraction))
    params = {k: torch.nn.Parameter(v.clone()) for k, v in start.items()}
    opt = LearnedOptimizer(params.values(), artifact=rule, total_steps=total, cooldown=fraction)
    for _ in range(total):
        opt.zero_grad()
        loss(params, {"X": X, "y": y}).backward()
        opt.step()
    for k in start:  # the meta-training path (vmapped forward) and the user's (foreach) agree
        torch.testing.assert_close(cooled[k][0], params[k].detach(), rtol=1e-5, atol=1e-6)
    plain = unroll(None)
    assert not torch.allclose(plain["w"], cooled["w"])


def test_the_cooldown_is_recorded_changes_what_is_learned_and_bad_fractions_are_refused():
    assert "cooldown" not in make_trainer().config()  # earlier runs keep their fingerprints
    cooled, plain = make_trainer(cooldown=0.4).fit(), make_trainer().fit()
    assert cooled.training["cooldown"] == 0.4 and "cooldown" not in plain.training
    weights = lambda a: list(a.learner.state_dict().values())  # noqa: E731 - short local helper
    assert not all(torch.equal(x, z) for x, z in zip(weights(cooled), weights(plain)))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="cooldown must be a fraction"):
            make_trainer(cooldown=bad)
