"""LearnedOptimizer(total_steps=...): the learned update cools down linearly over the run's last steps."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from automl_meta.engine.cooldown import cooldown_scale
from automl_meta.learners import HyperController, LSTMOptimizer
from automl_meta.optim import LearnedOptimizer

# The bundled default (what users get), an untrained controller and a rule without an in-place step.
RULES = {"default-l2o": "default-l2o", "controller": HyperController(seed=0), "lstm": LSTMOptimizer(seed=0)}


def make_problem(dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(64, 5, generator=gen)
    y = (X[:, :1] * 2 - X[:, 1:2]).tanh() + 0.1 * torch.randn(64, 1, generator=gen)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1)).to(dtype)
    return model, X.to(dtype), y.to(dtype)


def train(model, opt, X, y, steps, schedule=None):
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(X).float(), y.float()).backward()
        opt.step()
        if schedule is not None:
            schedule.step()
    return nn.functional.mse_loss(model(X).float(), y.float()).item()


def test_the_scale_is_one_then_falls_linearly_and_stays_at_its_last_value():
    total, fraction = 50, 0.2
    scales = [cooldown_scale(t, total, fraction) for t in range(1, total + 6)]
    assert scales[:40] == [1.0] * 40  # the first 80% of the steps are untouched
    falling = scales[40:total]
    steps = [a - b for a, b in zip(falling, falling[1:])]
    assert all(s == pytest.approx(1 / (fraction * total)) for s in steps)  # linear, 1/10 per step
    assert scales[total - 1] == pytest.approx(0.1) and scales[total:] == [scales[total - 1]] * 5
    assert cooldown_scale(7, None) == cooldown_scale(7, 10, 0.0) == 1.0


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # the in-place and the checked path
def test_total_steps_equals_the_same_multiplier_given_by_a_scheduler(name, dtype):
    total, fraction = 30, 0.4
    model, X, y = make_problem(dtype)
    reference = copy.deepcopy(model)
    cooled = LearnedOptimizer(model.parameters(), artifact=RULES[name], total_steps=total, cooldown=fraction)
    plain = LearnedOptimizer(reference.parameters(), artifact=RULES[name])
    schedule = torch.optim.lr_scheduler.LambdaLR(plain, lambda t: cooldown_scale(t + 1, total, fraction))
    train(model, cooled, X, y, total)
    train(reference, plain, X, y, total, schedule)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters()))
    uncooled, _, _ = make_problem(dtype)
    train(uncooled, LearnedOptimizer(uncooled.parameters(), artifact=RULES[name]), X, y, total)
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), uncooled.parameters()))


def test_a_resumed_run_keeps_its_length_and_cools_down_identically():
    model, X, y = make_problem()
    opt = LearnedOptimizer(model.parameters(), artifact=RULES["controller"], total_steps=20)
    train(model, opt, X, y, 12)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    expected = train(model, opt, X, y, 8)
    resumed, _, _ = make_problem(seed=1)
    resumed.load_state_dict(saved_model)
    opt2 = LearnedOptimizer(resumed.parameters(), artifact=RULES["controller"])  # length from the saved state
    opt2.load_state_dict(saved_opt)
    assert opt2.param_groups[0]["total_steps"] == 20
    assert train(resumed, opt2, X, y, 8) == expected


def test_steps_past_the_end_warn_once_and_keep_the_last_scale():
    model, X, y = make_problem()
    reference = copy.deepcopy(model)
    opt = LearnedOptimizer(model.parameters(), artifact=RULES["controller"], total_steps=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(model, opt, X, y, 10)
        assert not caught
        before = [p.detach().clone() for p in model.parameters()]
        train(model, opt, X, y, 3)
    assert len(caught) == 1 and "past total_steps=10" in str(caught[0].message)
    assert caught[0].filename == __file__  # points at the training loop
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # it still trains
    plain = LearnedOptimizer(reference.parameters(), artifact=RULES["controller"])
    last = cooldown_scale(10, 10)  # steps 11 to 13 at the scale of step 10
    train(
        reference,
        plain,
        X,
        y,
        13,
        torch.optim.lr_scheduler.LambdaLR(plain, lambda t: cooldown_scale(min(t + 1, 10), 10)),
    )
    assert last < 1 and all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters()))
    never = LearnedOptimizer(model.parameters(), artifact=RULES["controller"], total_steps=2, cooldown=0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(model, never, X, y, 4)
    assert not caught  # nothing is scaled without a cool-down, so nothing to warn about


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"total_steps": 0}, "total_steps must be None"),
        ({"total_steps": 2.5}, "total_steps must be None"),
        ({"total_steps": 10, "cooldown": 1.5}, r"cooldown must be a fraction in \[0, 1\]"),
        ({"total_steps": 10, "cooldown": -0.1}, "cooldown must be"),
    ],
)
def test_bad_lengths_and_fractions_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LearnedOptimizer([nn.Parameter(torch.zeros(3))], **kwargs)
