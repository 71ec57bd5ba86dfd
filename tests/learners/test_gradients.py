"""Meta-gradients of the vmapped engine against independent references, in float64.

MAML and Meta-SGD are compared with ``higher`` (a per-task Python loop); first-order MAML with its
formula (the mean query gradient at the fast weights); Reptile with its update rule; ANIL with a
hand-written head-only inner loop.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import automl_meta as am
from automl_meta.learners.base import _key

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "studies"))
import _higher_reference

TOL = 1e-10


def make(cls, steps, **kw):
    learner = cls(am.models.MLP([16, 16]), inner_steps=steps, inner_lr=0.05, **kw)
    learner.setup("regression", 1, 1, generator=torch.Generator().manual_seed(0)).to(torch.float64)
    if hasattr(learner, "rates"):  # distinct rates per entry, so a mix-up of rates would show
        with torch.no_grad():
            for r in learner.rates.values():
                r.uniform_(0.01, 0.1, generator=torch.Generator().manual_seed(1))
    return learner


def batch(n_tasks=5, shots=10):
    return am.tasks.Sinusoid(shots=shots).sample(n_tasks, rng=3).to(torch.float64)


def grads(learner):
    return {n: p.grad.detach().clone() for n, p in learner.named_parameters()}


def max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("steps", [1, 5])
def test_maml_matches_higher(steps):
    learner, data = make(am.learners.MAML, steps), batch()
    ours = learner.meta_backward(data)["loss"]
    g_ours = grads(learner)
    learner.zero_grad(set_to_none=True)
    ref = _higher_reference.meta_backward(learner.model, data, steps=steps, inner_lr=learner.inner_lr)
    assert ours == pytest.approx(ref, abs=TOL)
    assert max_diff(g_ours, grads(learner)) < TOL
    assert max(float(g.abs().max()) for g in g_ours.values()) > 1e-3  # a real gradient, not zeros


@pytest.mark.parametrize("steps", [1, 5])
def test_metasgd_matches_higher(steps):
    learner, data = make(am.learners.MetaSGD, steps), batch()
    learner.meta_backward(data)
    g_ours = grads(learner)
    learner.zero_grad(set_to_none=True)
    names = [n for n, _ in learner.model.named_parameters()]
    _higher_reference.meta_backward(
        learner.model, data, steps=steps, inner_lr=learner.inner_lr, rates=[learner.rates[_key(n)] for n in names]
    )
    g_ref = grads(learner)
    assert any(k.startswith("rates.") for k in g_ours)  # the learned rates get meta-gradients too
    assert max_diff(g_ours, g_ref) < TOL


def test_first_order_maml_is_the_query_gradient_at_the_fast_weights():
    steps = 3
    learner, data = make(am.learners.FirstOrderMAML, steps), batch()
    learner.meta_backward(data)
    g_ours = grads(learner)

    params = dict(learner.model.named_parameters())
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for t in range(len(data)):
        fast = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
        for _ in range(steps):
            pred = torch.func.functional_call(learner.model, fast, (data.x_support[t],))
            g = torch.autograd.grad(((pred - data.y_support[t]) ** 2).mean(), list(fast.values()))
            fast = {n: (f - learner.inner_lr * gi).detach().requires_grad_(True) for (n, f), gi in zip(fast.items(), g)}
        pred = torch.func.functional_call(learner.model, fast, (data.x_query[t],))
        gq = torch.autograd.grad(((pred - data.y_query[t]) ** 2).mean(), list(fast.values()))
        for n, gi in zip(fast, gq):
            expected[n] += gi / len(data)
    assert max_diff({f"model.{k}": v for k, v in expected.items()}, g_ours) < TOL

    second = make(am.learners.MAML, steps)
    second.meta_backward(data)
    assert max_diff(grads(second), g_ours) > 1e-6  # first order really drops the second-order terms


def test_reptile_update():
    steps, eps = 4, 0.3
    learner, data = make(am.learners.Reptile, steps), batch()
    theta = {n: p.detach().clone() for n, p in learner.model.named_parameters()}
    adapted = []
    for t in range(len(data)):
        fast = {n: p.clone().requires_grad_(True) for n, p in theta.items()}
        for _ in range(steps):
            pred = torch.func.functional_call(learner.model, fast, (data.x_support[t],))
            g = torch.autograd.grad(((pred - data.y_support[t]) ** 2).mean(), list(fast.values()))
            fast = {n: (f - learner.inner_lr * gi).detach().requires_grad_(True) for (n, f), gi in zip(fast.items(), g)}
        adapted.append(fast)
    learner.meta_backward(data)
    torch.optim.SGD(learner.parameters(), lr=eps).step()
    for n, p in learner.model.named_parameters():
        mean_fast = torch.stack([a[n].detach() for a in adapted]).mean(0)
        expected = theta[n] + eps * (mean_fast - theta[n])
        assert float((p.detach() - expected).abs().max()) < TOL
        assert float((p.detach() - theta[n]).abs().max()) > 1e-6


def test_anil_adapts_only_the_head():
    steps = 2
    learner, data = make(am.learners.ANIL, steps), batch()
    learner.meta_backward(data)
    g_ours = grads(learner)

    params = {n: p.detach().clone().requires_grad_(True) for n, p in learner.model.named_parameters()}
    head = learner.model.head_names
    total = 0.0
    for t in range(len(data)):
        fast = dict(params)
        for _ in range(steps):
            pred = torch.func.functional_call(learner.model, fast, (data.x_support[t],))
            g = torch.autograd.grad(
                ((pred - data.y_support[t]) ** 2).mean(), [fast[n] for n in head], create_graph=True
            )
            fast = {**fast, **{n: fast[n] - learner.inner_lr * gi for n, gi in zip(head, g)}}
        pred = torch.func.functional_call(learner.model, fast, (data.x_query[t],))
        total = total + ((pred - data.y_query[t]) ** 2).mean() / len(data)
    expected = dict(zip(params, torch.autograd.grad(total, list(params.values()))))
    assert max_diff({f"model.{k}": v for k, v in expected.items()}, g_ours) < TOL
    body = [n for n in g_ours if n.removeprefix("model.") not in head]
    assert body and all(float(g_ours[n].abs().max()) > 0 for n in body)  # the body learns through the head
