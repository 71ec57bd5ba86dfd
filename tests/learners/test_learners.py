"""Learner set-up, configuration and the errors users meet first."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import automl_meta as am
from automl_meta.learners import LEARNERS, from_config


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_config_round_trip_rebuilds_the_same_learner(name):
    learner = LEARNERS[name](am.models.MLP([6])).setup("regression", 2, 1, torch.Generator().manual_seed(0))
    again = from_config(learner.get_config())
    assert type(again) is type(learner) and again.get_config() == learner.get_config()
    assert again.state_dict().keys() == learner.state_dict().keys()


def test_meta_sgd_rates_per_parameter_or_per_tensor():
    per_param = am.learners.MetaSGD(am.models.MLP([6]), inner_lr=0.05).setup("regression", 2, 1)
    per_tensor = am.learners.MetaSGD(am.models.MLP([6]), lr_granularity="tensor").setup("regression", 2, 1)
    assert per_param.rates["layers__0__weight"].shape == (6, 2)
    assert torch.all(per_param.rates["layers__0__weight"] == 0.05)
    assert per_tensor.rates["layers__0__weight"].shape == ()


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: am.learners.MAML(am.models.MLP(), inner_steps=0), ValueError, "inner_steps must be a positive"),
        (lambda: am.learners.MAML(am.models.MLP(), inner_lr=-1.0), ValueError, "inner_lr must be a positive"),
        (lambda: am.learners.MAML(am.models.MLP(), first_order="yes"), ValueError, "first_order must be True"),
        (lambda: am.learners.MetaSGD(am.models.MLP(), lr_granularity="layer"), ValueError, "lr_granularity"),
        (lambda: am.learners.MAML("mlp"), TypeError, "model must be a torch.nn.Module"),
        (lambda: am.learners.ANIL(torch.nn.Linear(1, 1)), TypeError, "names its head"),
        (lambda: am.learners.FirstOrderMAML(am.models.MLP(), first_order=False), ValueError, "always first order"),
        (lambda: am.learners.MAML(am.models.MLP(), inner_step=3), TypeError, "inner_step"),
    ],
)
def test_bad_hyperparameters(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_widths_and_task_types_must_fit():
    built = am.learners.MAML(am.models.MLP([4], in_features=3, out_features=1))
    with pytest.raises(ValueError, match="built for 3 inputs and 1 outputs, but the tasks have 1 and 1"):
        built.setup("regression", 1, 1)
    with pytest.raises(RuntimeError, match="not set up"):
        am.learners.MAML(am.models.MLP()).adapt(np.zeros((3, 1)), np.zeros(3))
    learner = am.learners.MAML(am.models.MLP([4])).setup("regression", 1, 1)
    with pytest.raises(am.TaskError, match="set up for regression tasks, got a classification batch"):
        learner.meta_backward(am.tasks.SyntheticTabular("classification", n_features=1).sample(2, rng=0))
    with pytest.raises(am.TaskError, match="The batch has 3 features but the model takes 1"):
        learner.meta_backward(am.tasks.SyntheticTabular("regression", n_features=3).sample(2, rng=0))
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        learner.evaluate(am.tasks.Sinusoid().sample(2, rng=0), steps=-1)


def test_safeguarded_extra_steps_never_raise_the_support_loss():
    # Rates far too large for repeated steps: plain steps diverge, safeguarded ones cannot.
    learner = am.learners.MetaSGD(am.models.MLP([16]), inner_lr=2.0).setup(
        "regression", 1, 1, torch.Generator().manual_seed(0)
    )
    batch = am.tasks.Sinusoid(shots=10).sample(20, rng=0)
    support_as_query = am.tasks.TaskBatch(
        **{**batch.tensors(), "x_query": batch.x_support, "y_query": batch.y_support, "query_mask": batch.support_mask}
    )
    losses = [learner.evaluate(support_as_query, steps=s)[0] for s in (1, 2, 5, 20)]
    for before, after in zip(losses, losses[1:]):
        assert torch.all(after <= before + 1e-5)
    assert torch.isfinite(losses[-1]).all()


def _one_weight_task(x: float, y: float) -> dict[str, torch.Tensor]:
    """Support data of a task whose loss is ``(w * x - y) ** 2`` for the model ``x -> w * x``."""
    t = lambda v: torch.tensor([[v]], dtype=torch.float64)  # noqa: E731
    return {"x": t(x), "y": t(y), "mask": torch.ones(1, dtype=torch.float64), "class_mask": torch.ones(1)}


def _scale(params, x):
    return x * params["w"]


def test_safeguarded_steps_search_their_first_scale_then_keep_adjusting_it():
    support, w = _one_weight_task(1.0, 0.0), torch.tensor(1.0, dtype=torch.float64)
    rates = {"w": torch.tensor(1.5, dtype=torch.float64)}  # loss w**2, gradient 2w: a full step goes to -2w
    run = lambda steps: float(  # noqa: E731
        am.engine.adapt(_scale, {"w": w}, rates, support, steps=steps, task_type="regression", safeguard_after=0)["w"]
    )
    assert run(1) == 0.25  # the full step would raise the loss; a quarter of it does not
    assert run(2) == 0.25 - 0.5 * 1.5 * 0.5  # taken: the scale doubles to 1/2, -0.125
    assert run(3) == -0.125  # at scale 1 the step would go to 0.25 and raise the loss: not taken
    assert run(4) == -0.125 + 0.25 * 1.5 * 0.25  # the next at a quarter: -0.03125


def test_mini_batches_take_the_steps_in_turn():
    first, second = _one_weight_task(1.0, 2.0), _one_weight_task(2.0, 1.0)
    rates, w = {"w": torch.tensor(0.1, dtype=torch.float64)}, {"w": torch.tensor(0.0, dtype=torch.float64)}
    step = lambda p, s: am.engine.adapt(_scale, p, rates, s, steps=1, task_type="regression")  # noqa: E731
    expected = step(step(step(w, first), second), first)["w"]
    got = am.engine.adapt(_scale, w, rates, [first, second], steps=3, task_type="regression")["w"]
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert not torch.equal(got, am.engine.adapt(_scale, w, rates, first, steps=3, task_type="regression")["w"])
