"""LearnedOptimizer on unusual parameters (empty, half precision) and on state it must refuse at load time."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from automl_meta.optim import LearnedOptimizer


def make_model(hidden=16, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, hidden), nn.Tanh(), nn.Linear(hidden, 1)).to(dtype)


def data(dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(64, 5, generator=gen)
    return X.to(dtype), (X[:, :1] * 2 - X[:, 1:2]).tanh().to(dtype)


def step(model, opt, X, y):
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(X), y)
    loss.backward()
    opt.step()
    return loss.item()


def test_zero_size_parameters_are_skipped():
    X, y = data()
    model, reference = make_model(), make_model()
    empty = [nn.Parameter(torch.empty(0)), nn.Parameter(torch.empty(3, 0))]
    opt = LearnedOptimizer([*model.parameters(), *empty])
    ref_opt = LearnedOptimizer(reference.parameters())
    for _ in range(3):
        opt.zero_grad()
        nn.functional.mse_loss(model(X), y).backward()
        for p in empty:
            p.grad = torch.zeros_like(p)  # as a model's empty tensors get from backward()
        opt.step()
        step(reference, ref_opt, X, y)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters()))
    assert all(p not in opt.state for p in empty)
    again = LearnedOptimizer([*model.parameters(), *empty])
    again.load_state_dict(opt.state_dict())  # the skipped tensors' missing state is not a mismatch


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_parameters_are_updated_in_float32(dtype):
    X, y = data(dtype)
    model = make_model(dtype=dtype)
    opt = LearnedOptimizer(model.parameters())
    losses = [step(model, opt, X, y) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.dtype == dtype for p in model.parameters())
    assert all(v.dtype == torch.float32 for s in opt.state.values() for v in s.values())

    # One more step equals the float32 step on float32 copies (same state), rounded to the parameters' dtype.
    single = copy.deepcopy(model).float()
    single_opt = LearnedOptimizer(single.parameters())
    single_opt.load_state_dict(opt.state_dict())
    opt.zero_grad()
    nn.functional.mse_loss(model(X), y).backward()
    for p, q in zip(model.parameters(), single.parameters()):
        q.grad = p.grad.float()
    opt.step()
    single_opt.step()
    assert all(torch.equal(p, q.to(dtype)) for p, q in zip(model.parameters(), single.parameters()))


def test_half_precision_state_survives_a_round_trip():
    X, y = data(torch.float16)
    model = make_model(dtype=torch.float16)
    opt = LearnedOptimizer(model.parameters())
    for _ in range(3):
        step(model, opt, X, y)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    expected = [step(model, opt, X, y) for _ in range(3)]
    model2 = make_model(dtype=torch.float16, seed=1)
    model2.load_state_dict(saved_model)
    opt2 = LearnedOptimizer(model2.parameters())
    opt2.load_state_dict(saved_opt)
    assert all(v.dtype == torch.float32 for s in opt2.state.values() for v in s.values())
    assert [step(model2, opt2, X, y) for _ in range(3)] == expected


def test_state_of_another_optimizer_or_model_is_refused_at_load_time():
    X, y = data()
    model = make_model()
    adam = torch.optim.Adam(model.parameters())
    step(model, adam, X, y)
    opt = LearnedOptimizer(model.parameters())
    with pytest.raises(ValueError, match=r"no 'update_rule' record .*'exp_avg'"):
        opt.load_state_dict(adam.state_dict())
    assert not opt.state  # nothing half-loaded

    step(model, opt, X, y)
    wider = make_model(hidden=8)
    with pytest.raises(ValueError, match=r"parameter 0 in group 0 has 'm' of shape \(16, 5\).*shape \(8, 5\)"):
        LearnedOptimizer(wider.parameters()).load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match=r"groups of \[4\] tensors; this optimizer's have \[2\]"):
        LearnedOptimizer(model[0].parameters()).load_state_dict(opt.state_dict())

    adam_like = opt.state_dict()
    adam_like["state"] = copy.deepcopy(adam.state_dict()["state"])
    with pytest.raises(ValueError, match=r"holds \['exp_avg', 'exp_avg_sq', 'step'\].*another optimizer"):
        LearnedOptimizer(model.parameters()).load_state_dict(adam_like)
