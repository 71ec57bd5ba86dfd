"""iMAML: its implicit meta-gradient against closed forms and unrolled references, in float64.

Closed form: on linear-regression tasks with the (quadratic) MSE loss, the proximal inner problem
has the solution ``phi*(theta) = (H + lam I)^-1 (lam theta + b)``, solved here with torch.linalg and
differentiated by autograd, a reference that shares no code with the implicit formula. Unrolled:
with the inner loop run to convergence, the gradient through the unrolled proximal steps (written
here with torch.func) approaches the implicit one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call, grad

import automl_meta as am
from automl_meta.cli import main
from automl_meta.engine.implicit import conjugate_gradient
from automl_meta.learners import LEARNERS
from automl_meta.tasks import Task, TaskBatch

F64 = torch.float64


def grads(learner) -> dict[str, torch.Tensor]:
    return {n.removeprefix("model."): p.grad.detach().clone() for n, p in learner.named_parameters()}


def max_diff(a, b) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def linear_tasks(n_tasks=4, d=3, n_support=8, n_query=12, seed=0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for _ in range(n_tasks):
        w, shift = torch.randn(d, generator=g), float(torch.randn((), generator=g))
        xs, xq = torch.randn(n_support, d, generator=g), torch.randn(n_query, d, generator=g)
        tasks.append(Task(xs.numpy(), (xs @ w).numpy(), xq.numpy(), (xq @ w + shift).numpy()))
    return TaskBatch.from_tasks(tasks).to(F64)


def make_imaml(hidden, in_features, *, seed=0, **kw) -> am.learners.IMAML:
    learner = am.learners.IMAML(am.models.MLP(hidden, activation="tanh"), **kw)
    return learner.setup("regression", in_features, 1, generator=torch.Generator().manual_seed(seed)).to(F64)


def linear_problem(batch: TaskBatch, t: int, theta: torch.Tensor, lam: float):
    """Task ``t`` of linear tasks, parameters ``theta = (W, b)``: support Hessian, proximal minimiser, query design.

    The support MSE ``|A theta - y|^2 / n`` is quadratic with Hessian ``H = 2 A^T A / n``, so the
    proximal objective is minimised where ``(H + lam I) phi = lam theta + 2 A^T y / n``.
    """
    A = torch.cat([batch.x_support[t], torch.ones(batch.x_support.shape[1], 1, dtype=F64)], 1)
    Aq = torch.cat([batch.x_query[t], torch.ones(batch.x_query.shape[1], 1, dtype=F64)], 1)
    H = 2 / len(A) * A.T @ A
    phi = torch.linalg.solve(
        H + lam * torch.eye(len(theta), dtype=F64), lam * theta + 2 / len(A) * A.T @ batch.y_support[t, :, 0]
    )
    return H, phi, Aq


def closed_form_meta_gradient(learner, batch: TaskBatch, lam: float) -> dict[str, torch.Tensor]:
    """Gradient of the mean query MSE at the exact proximal minimiser, by autograd through torch.linalg.solve."""
    layer = learner.model.layers[0]
    W, b = (p.detach().clone().requires_grad_(True) for p in (layer.weight, layer.bias))
    total = 0.0
    for t in range(len(batch)):
        _, phi, Aq = linear_problem(batch, t, torch.cat([W.reshape(-1), b]), lam)
        total = total + ((Aq @ phi - batch.y_query[t, :, 0]) ** 2).mean() / len(batch)
    gW, gb = torch.autograd.grad(total, [W, b])
    return {"layers.0.weight": gW, "layers.0.bias": gb}


def mean_linear_solve(learner, batch: TaskBatch, lam: float, damping: float) -> torch.Tensor:
    """Mean over tasks of ``((1 + damping) I + H / lam)^-1 g``, g the query gradient at the proximal minimiser."""
    theta = torch.cat([p.detach().reshape(-1) for p in learner.model.parameters()])
    expected = torch.zeros_like(theta)
    for t in range(len(batch)):
        H, phi, Aq = linear_problem(batch, t, theta, lam)
        g = 2 / len(Aq) * Aq.T @ (Aq @ phi - batch.y_query[t, :, 0])
        expected += torch.linalg.solve((1 + damping) * torch.eye(len(theta), dtype=F64) + H / lam, g) / len(batch)
    return expected


@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_meta_gradient_equals_the_closed_form_implicit_gradient(lam):
    batch = linear_tasks()
    # Step 1 / (lam + largest curvature) converges fast; 4 parameters need at most 4 CG steps.
    learner = make_imaml([], 3, inner_steps=150, inner_lr=0.15, lam=lam, cg_steps=6)
    loss = learner.meta_backward(batch)["loss"]
    expected = closed_form_meta_gradient(learner, batch, lam)
    assert max_diff(grads(learner), expected) < 1e-6
    assert max(float(g.abs().max()) for g in expected.values()) > 0.1  # a real gradient, not zeros
    assert loss > 0


def test_meta_gradient_is_the_linear_solve_of_the_query_gradient():
    """v = (I + H/lam)^-1 g per task, H of the support loss without the proximal term, g at phi*."""
    batch, lam = linear_tasks(n_tasks=3, seed=1), 1.0
    learner = make_imaml([], 3, inner_steps=200, inner_lr=0.15, lam=lam, cg_steps=6)
    learner.meta_backward(batch)
    expected = mean_linear_solve(learner, batch, lam, damping=0.0)
    ours = torch.cat([p.grad.reshape(-1) for p in learner.model.parameters()])
    assert float((ours - expected).abs().max()) < 1e-6


def test_cg_damping_solves_the_damped_system():
    A = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]], dtype=F64)
    b = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    x = conjugate_gradient(lambda p: {"w": A @ p["w"]}, {"w": b}, steps=3)["w"]
    assert torch.allclose(x, torch.linalg.solve(A, b), atol=1e-12)
    # A direction of negative curvature stops the iteration instead of diverging.
    indefinite = torch.diag(torch.tensor([1.0, -1.0], dtype=F64))
    x = conjugate_gradient(lambda p: {"w": indefinite @ p["w"]}, {"w": torch.tensor([1.0, 1.0], dtype=F64)}, steps=5)[
        "w"
    ]
    assert torch.isfinite(x).all()

    batch, lam, damping = linear_tasks(n_tasks=2, seed=2), 1.0, 0.5
    learner = make_imaml([], 3, inner_steps=200, inner_lr=0.15, lam=lam, cg_steps=6, cg_damping=damping)
    learner.meta_backward(batch)
    undamped = make_imaml([], 3, inner_steps=200, inner_lr=0.15, lam=lam, cg_steps=6)
    undamped.meta_backward(batch)
    expected = mean_linear_solve(learner, batch, lam, damping=damping)
    ours = torch.cat([p.grad.reshape(-1) for p in learner.model.parameters()])
    assert float((ours - expected).abs().max()) < 1e-6
    assert max_diff(grads(learner), grads(undamped)) > 1e-3


def unrolled_meta_gradient(learner, batch: TaskBatch, steps: int) -> dict[str, torch.Tensor]:
    """Gradient through ``steps`` unrolled proximal GD steps, per task, written independently."""
    model, lam, lr = learner.model, learner.lam, learner.inner_lr
    theta = {n: p.detach() for n, p in model.named_parameters()}

    def mse(params, x, y):
        return ((functional_call(model, params, (x,)) - y) ** 2).mean()

    def meta_loss(theta, t):
        phi = dict(theta)
        for _ in range(steps):
            g = grad(
                lambda p: (
                    mse(p, batch.x_support[t], batch.y_support[t])
                    + lam / 2 * sum(((p[k] - theta[k]) ** 2).sum() for k in p)
                )
            )(phi)
            phi = {k: phi[k] - lr * g[k] for k in phi}
        return mse(phi, batch.x_query[t], batch.y_query[t])

    per_task = [grad(meta_loss)(theta, t) for t in range(len(batch))]
    return {k: sum(g[k] for g in per_task) / len(batch) for k in theta}


def test_implicit_gradient_approaches_the_unrolled_gradient_as_the_inner_loop_converges():
    batch = am.tasks.Sinusoid(shots=10).sample(3, rng=4).to(F64)
    errors = []
    for steps in (5, 30, 150):
        # 8 + 8 + 8 + 1 = 25 parameters: 40 CG steps solve the system to round-off.
        learner = make_imaml([8], 1, seed=1, inner_steps=steps, inner_lr=0.05, lam=4.0, cg_steps=40)
        learner.meta_backward(batch)
        unrolled = unrolled_meta_gradient(learner, batch, steps)
        scale = max(float(g.abs().max()) for g in unrolled.values())
        errors.append(max_diff(grads(learner), unrolled) / scale)
    assert errors[0] > 0.1  # short inner loops: the two differ, ...
    assert errors[0] > errors[1] > errors[2]
    # ... converged ones agree, to the precision at which the safeguard's comparison of objective values
    # (equal to round-off near the minimum) stops refining the inner solution.
    assert errors[2] < 1e-7


def test_first_order_uses_the_query_gradient_at_the_adapted_weights():
    batch = am.tasks.Sinusoid(shots=10).sample(4, rng=5).to(F64)
    learner = make_imaml([8], 1, inner_steps=5, inner_lr=0.05, lam=1.0, first_order=True)
    learner.meta_backward(batch)
    model = learner.model
    theta = {n: p.detach() for n, p in model.named_parameters()}
    expected = {n: torch.zeros_like(p) for n, p in theta.items()}
    for t in range(len(batch)):
        phi = {n: p.clone().requires_grad_(True) for n, p in theta.items()}
        for _ in range(5):
            loss = ((functional_call(model, phi, (batch.x_support[t],)) - batch.y_support[t]) ** 2).mean()
            g = torch.autograd.grad(loss, list(phi.values()))
            phi = {
                n: (phi[n] - 0.05 * (gi + 1.0 * (phi[n] - theta[n]))).detach().requires_grad_(True)
                for n, gi in zip(phi, g)
            }
        q = ((functional_call(model, phi, (batch.x_query[t],)) - batch.y_query[t]) ** 2).mean()
        for n, gi in zip(phi, torch.autograd.grad(q, list(phi.values()))):
            expected[n] += gi / len(batch)
    assert max_diff(grads(learner), expected) < 1e-12

    second = make_imaml([8], 1, inner_steps=5, inner_lr=0.05, lam=1.0)
    second.meta_backward(batch)
    assert max_diff(grads(second), expected) > 1e-4  # the Hessian term is really dropped


def test_adapt_runs_the_proximal_inner_loop_and_continues_exactly():
    batch = am.tasks.Sinusoid(shots=10).sample(3, rng=6).to(F64)
    learner = make_imaml([8], 1, inner_steps=4, inner_lr=0.05, lam=2.0)
    fresh = learner.adapt_batch(batch, steps=9)
    part = learner.adapt_batch(batch, steps=4)
    continued = learner.adapt_batch(batch, steps=5, start=part)
    assert max_diff(fresh, continued) < 1e-12
    # Stronger proximal terms keep the adapted weights closer to the initialisation.
    theta = {n: p.detach() for n, p in learner.model.named_parameters()}

    def distance(adapted):
        return sum(float(((adapted[k] - theta[k]) ** 2).sum()) for k in theta)

    loose = make_imaml([8], 1, inner_steps=4, inner_lr=0.05, lam=0.1).adapt_batch(batch)
    tight = make_imaml([8], 1, inner_steps=4, inner_lr=0.05, lam=10.0).adapt_batch(batch)
    assert distance(tight) < 0.8 * distance(loose)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lam": 0.0}, "lam must be a positive"),
        ({"lam": float("inf")}, "lam must be a positive"),
        ({"cg_steps": 0}, "cg_steps must be a positive integer"),
        ({"cg_steps": 2.5}, "cg_steps must be a positive integer"),
        ({"cg_damping": -0.1}, "cg_damping must be a finite number >= 0"),
        ({"cg_damping": "0.1"}, "cg_damping must be a finite number >= 0"),
        ({"first_order": 1}, "first_order must be True or False"),
        ({"inner_steps": 0}, "inner_steps must be a positive"),
    ],
)
def test_bad_settings_name_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        am.learners.IMAML(am.models.MLP([4]), **kwargs)


def test_meta_training_lowers_the_loss_and_the_artifact_round_trips(tmp_path):
    assert LEARNERS["imaml"] is am.learners.IMAML
    learner = am.learners.IMAML(am.models.MLP([32, 32]), inner_steps=5, inner_lr=0.02, lam=1.0, cg_steps=3)
    learner.setup("regression", 1, 1, generator=torch.Generator().manual_seed(0))
    held_out = am.tasks.Sinusoid(shots=10).sample(50, rng=7)
    before = float(learner.evaluate(held_out)[0].mean())
    artifact = am.MetaTrainer(
        learner, am.tasks.Sinusoid(shots=10), iterations=60, outer_lr=1e-2, n_validation_tasks=0, verbose=0, seed=0
    ).fit()
    after = float(learner.evaluate(held_out)[0].mean())
    assert after < 0.8 * before

    path = artifact.save(tmp_path / "imaml.ameta")
    loaded = am.load(path)
    assert type(loaded.learner) is am.learners.IMAML
    assert loaded.learner.get_config() == learner.get_config()
    assert float(loaded.learner.evaluate(held_out)[0].mean()) == pytest.approx(after, rel=1e-6)
    x = np.linspace(-5, 5, 10)[:, None]
    fitted = loaded.adapt(x, 2 * np.sin(x[:, 0]), steps=10)
    assert fitted.predict(x).shape == (10,)
    direct = learner.adapt(x, 2 * np.sin(x[:, 0]), steps=10)
    assert np.allclose(fitted.predict(x), direct.predict(x), atol=1e-6)


def test_cli_meta_trains_imaml_from_a_config(tmp_path):
    out, cfg = tmp_path / "imaml.ameta", tmp_path / "run.toml"
    cfg.write_text(f"""
seed = 1
output = "{out}"
[tasks]
family = "Sinusoid"
shots = 5
[learner]
name = "imaml"
inner_steps = 3
inner_lr = 0.02
lam = 2.0
cg_steps = 2
cg_damping = 0.1
model = {{ name = "MLP", hidden_sizes = [8] }}
[trainer]
iterations = 4
n_validation_tasks = 5
eval_every = 2
verbose = 0
""")
    assert main(["meta-train", str(cfg)]) == 0
    learner = am.load(out).learner
    assert isinstance(learner, am.learners.IMAML)
    assert (learner.inner_steps, learner.lam, learner.cg_steps, learner.cg_damping) == (3, 2.0, 2, 0.1)


def test_a_step_size_too_large_for_a_sharp_task_still_solves_the_inner_problem():
    """Steps are capped at 1 / (lam + largest curvature), so the meta-gradient stays the implicit one.

    With x scaled by 6 the support loss's curvature reaches the hundreds: a fixed step of 0.5, even
    cut to 1/16 by the safeguard, would overshoot along it, and the inner loop would not move.
    """
    batch = linear_tasks(seed=3)
    batch.x_support.mul_(6.0)
    batch.x_query.mul_(6.0)
    lam = 1.0
    learner = make_imaml([], 3, inner_steps=3000, inner_lr=0.5, lam=lam, cg_steps=6)
    learner.meta_backward(batch)
    expected = closed_form_meta_gradient(learner, batch, lam)
    assert max(float(g.abs().max()) for g in expected.values()) > 0.1
    assert max_diff(grads(learner), expected) < 1e-6 * max(float(g.abs().max()) for g in expected.values())
