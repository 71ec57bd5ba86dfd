"""LearnedOptimizer as a torch.optim.Optimizer: state, groups, closures, skorch, extreme gradients."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import automl_meta as am
from automl_meta.learners import HyperController, LSTMOptimizer, MLPOptimizer
from automl_meta.optim import LearnedOptimizer, learned

RULES = {
    "lstm": LSTMOptimizer(seed=0),
    "mlp": MLPOptimizer(seed=0),
    "controller": HyperController(seed=0),
    "controller-sgd": HyperController(base="sgd", seed=0),
}


def make_problem(seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(64, 5, generator=gen)
    y = (X[:, :1] * 2 - X[:, 1:2]).tanh() + 0.1 * torch.randn(64, 1, generator=gen)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1))
    return model, X, y


def train(model, opt, X, y, steps):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(X), y)
        loss.backward()
        opt.step()
        losses.append(loss.detach().item())
    return losses


@pytest.mark.parametrize("name", sorted(RULES))
def test_state_dict_round_trip_continues_identically(name):
    model, X, y = make_problem()
    opt = LearnedOptimizer(model.parameters(), artifact=RULES[name])
    train(model, opt, X, y, 5)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    expected = train(model, opt, X, y, 5)
    final = [p.detach().clone() for p in model.parameters()]

    model2, _, _ = make_problem(seed=1)  # other weights, then restored
    model2.load_state_dict(saved_model)
    opt2 = LearnedOptimizer(model2.parameters(), artifact=RULES[name])
    opt2.load_state_dict(saved_opt)
    assert train(model2, opt2, X, y, 5) == expected
    assert all(torch.equal(a, b) for a, b in zip(final, model2.parameters()))


def test_state_saved_before_the_bias_correction_option_still_loads():
    model, X, y = make_problem()
    opt = LearnedOptimizer(model.parameters())  # default-l2o, meta-trained without the correction
    train(model, opt, X, y, 2)
    saved = opt.state_dict()
    assert "bias_correction" not in saved["update_rule"]["config"]  # the record an earlier version wrote
    LearnedOptimizer(model.parameters()).load_state_dict(saved)


def test_state_of_another_rule_is_refused():
    model, X, y = make_problem()
    opt = LearnedOptimizer(model.parameters(), artifact=HyperController(seed=0))
    train(model, opt, X, y, 2)
    other = LearnedOptimizer(model.parameters(), artifact=HyperController(seed=1))
    with pytest.raises(ValueError, match="different learned optimizer"):
        other.load_state_dict(opt.state_dict())
    same_weights = HyperController(seed=0, interval=3)
    with pytest.raises(ValueError, match="other settings: interval"):
        LearnedOptimizer(model.parameters(), artifact=same_weights).load_state_dict(opt.state_dict())
    # A resumable setting (the momentum bound) does not excuse another difference beside it.
    both = HyperController(seed=0, interval=3, max_momentum=0.5)
    both.load_state_dict(opt.rule.state_dict())  # the same weights (the bound sets the untrained ones)
    with pytest.raises(ValueError, match="other settings: interval, max_momentum"):
        LearnedOptimizer(model.parameters(), artifact=both).load_state_dict(opt.state_dict())


def test_state_saved_with_default_l2o_before_its_momentum_bound_loads_with_a_warning():
    """A run saved with the shipped weights unbounded (0.99, as before the bound) resumes under the bound."""
    shipped = am.load("default-l2o").learner
    unbounded = am.learners.from_config({k: v for k, v in shipped.get_config().items() if k != "max_momentum"})
    unbounded.load_state_dict(shipped.state_dict())
    model, X, y = make_problem()
    before = LearnedOptimizer(model.parameters(), artifact=unbounded)
    train(model, before, X, y, 12)
    saved = before.state_dict()
    assert "max_momentum" not in saved["update_rule"]["config"]  # the record an earlier version wrote
    resumed = LearnedOptimizer(model.parameters())
    with pytest.warns(UserWarning, match="same learned rule under other settings \\(max_momentum=0.99, here 0.92\\)"):
        resumed.load_state_dict(saved)
    for p in model.parameters():  # the moments carry over
        torch.testing.assert_close(resumed.state[p]["m"], before.state[p]["m"])
    train(model, resumed, X, y, 10)  # and the run goes on under the bound
    assert all(float(resumed.state[p]["beta"]) <= 0.92 * (1 + 1e-6) for p in model.parameters())


def test_several_param_groups_each_with_its_own_scale():
    model, X, y = make_problem()
    first, last = model[0], model[2]
    frozen = [p.detach().clone() for p in first.parameters()]
    before = [p.detach().clone() for p in last.parameters()]
    opt = LearnedOptimizer(
        [{"params": first.parameters(), "lr": 0.0}, {"params": last.parameters()}], artifact=RULES["controller"]
    )
    assert [g["lr"] for g in opt.param_groups] == [0.0, 1.0]
    train(model, opt, X, y, 3)
    assert all(torch.equal(a, b) for a, b in zip(frozen, first.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before, last.parameters()))
    assert len(opt.state) == 4  # every tensor with a gradient has its state, scaled or not

    # A half-scaled group moves exactly half as far on its first step.
    model_a, _, _ = make_problem()
    model_b = copy.deepcopy(model_a)
    for m, lr in ((model_a, 1.0), (model_b, 0.5)):
        o = LearnedOptimizer(
            [{"params": m[0].parameters(), "lr": lr}, {"params": m[2].parameters()}], artifact=RULES["controller"]
        )
        train(m, o, X, y, 1)
    start = make_problem()[0]
    torch.testing.assert_close(model_b[0].weight - start[0].weight, 0.5 * (model_a[0].weight - start[0].weight))


def test_closure_form_returns_the_loss_and_trains():
    model, X, y = make_problem()
    opt = LearnedOptimizer(model.parameters(), artifact=RULES["controller"])

    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(X), y)
        loss.backward()
        return loss

    losses = [opt.step(closure).detach().item() for _ in range(60)]
    assert losses[-1] < 0.5 * losses[0]


def test_lr_scheduler_scales_the_update():
    model, X, y = make_problem()
    opt = LearnedOptimizer(model.parameters(), artifact=RULES["controller"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 0.0)
    assert opt.param_groups[0]["lr"] == 0.0
    before = [p.detach().clone() for p in model.parameters()]
    train(model, opt, X, y, 2)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    del sched


def test_skorch_neural_net_classifier_fits():
    skorch = pytest.importorskip("skorch")  # a dev dependency: installed by `make test`
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))
    net = skorch.NeuralNetClassifier(
        module,
        criterion=nn.CrossEntropyLoss,
        optimizer=LearnedOptimizer,
        optimizer__artifact=RULES["controller"],
        lr=1.0,
        max_epochs=15,
        batch_size=32,
        train_split=None,
        verbose=0,
    )
    net.fit(X, y.astype(np.int64))
    assert isinstance(net.optimizer_, LearnedOptimizer)
    losses = net.history[:, "train_loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert net.score(X, y) > 0.9


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("value", [0.0, 1e-30, -1e-30, 1e30, -1e30])
def test_extreme_finite_gradients_give_finite_updates(name, value):
    p = nn.Parameter(torch.ones(3, 4))
    opt = LearnedOptimizer([p], artifact=RULES[name])
    for _ in range(3):
        p.grad = torch.full_like(p, value)
        opt.step()
        assert torch.isfinite(p).all()
    for v in opt.state[p].values():
        assert torch.isfinite(v).all()
    # ... and training goes on normally afterwards.
    p.grad = torch.ones_like(p)
    opt.step()
    assert torch.isfinite(p).all()


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_gradients_raise_and_leave_the_model_unchanged(name, value):
    a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(2))
    opt = LearnedOptimizer([a, b], artifact=RULES[name])
    a.grad, b.grad = torch.ones(3), torch.tensor([1.0, value])
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        opt.step()
    assert torch.equal(a.detach(), torch.ones(3)) and torch.equal(b.detach(), torch.ones(2))
    assert not opt.state  # nothing was half-applied


@pytest.mark.parametrize("name", sorted(RULES))
def test_an_update_that_overflows_raises_names_the_parameter_and_leaves_the_model_unchanged(name):
    a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(2, dtype=torch.float16))
    # The second group's scale turns a finite learned step into inf in float16: no parameter may be written.
    opt = LearnedOptimizer([{"params": [a]}, {"params": [b], "lr": 1e12}], artifact=RULES[name])
    a.grad, b.grad = torch.ones(3), torch.ones(2, dtype=torch.float16)
    with pytest.raises(FloatingPointError, match="update of parameter 0 in group 1 is not finite in torch.float16"):
        opt.step()
    assert torch.equal(a.detach(), torch.ones(3)) and torch.equal(b.detach(), torch.ones(2, dtype=torch.float16))
    assert all("step" not in s or int(s["step"]) == 0 for s in opt.state.values())


def test_float64_parameters_use_a_float64_rule():
    model, X, y = make_problem()
    model.double()
    opt = LearnedOptimizer(model.parameters(), artifact=RULES["mlp"])
    losses = train(model, opt, X.double(), y.double(), 3)
    assert all(np.isfinite(losses)) and next(model.parameters()).dtype == torch.float64


def test_artifacts_are_accepted_by_object_path_and_name(tmp_path):
    rule = HyperController(seed=0)
    artifact = am.MetaArtifact(rule)
    path = artifact.save(tmp_path / "ctrl.ameta")
    p = nn.Parameter(torch.ones(3))
    for source in (artifact, path, str(path)):
        opt = LearnedOptimizer([p], artifact=source)
        assert isinstance(opt.rule, HyperController)
    assert isinstance(LearnedOptimizer([p]).rule, am.learners.UpdateRule)  # the bundled default-l2o
    with pytest.raises(ValueError, match="not a learned optimizer"):
        LearnedOptimizer([p], artifact="default-tabular-classification")
    with pytest.raises(am.ArtifactError, match="No artifact file"):
        LearnedOptimizer([p], artifact="no-such-optimizer")
    with pytest.raises(ValueError, match="lr must be"):
        LearnedOptimizer([p], artifact=rule, lr=-1.0)
    with pytest.raises(TypeError, match="learned optimizer"):
        am.load(path).adapt(np.zeros((3, 1)), np.zeros(3))


@pytest.mark.parametrize("path", ["in-place", "checked"])
@pytest.mark.parametrize(
    ("base", "interval", "gain", "corrected", "max_momentum"),
    [
        ("adam", 1, 0.0, False, 0.99),
        ("sgd", 1, 0.0, False, 0.99),
        ("adam", 3, 0.0, False, 0.99),
        ("sgd", 2, 0.0, False, 0.99),
        ("adam", 2, 0.5, False, 0.99),
        ("adam", 1, 0.0, True, 0.99),
        ("adam", 3, 0.0, True, 0.99),
        ("adam", 3, 0.0, False, 0.5),
        ("sgd", 1, 0.0, False, 0.5),
    ],
)
def test_batched_controller_step_matches_the_rule_applied_per_tensor(
    base, interval, gain, corrected, max_momentum, path, monkeypatch
):
    if path == "checked":  # no scale is small enough for writing in place: every step is computed aside
        monkeypatch.setattr(learned, "_IN_PLACE_MAX_SCALE", -1.0)
    rule = HyperController(
        base=base, interval=interval, hypergradient=gain, bias_correction=corrected, max_momentum=max_momentum, seed=0
    )
    rule = rule.requires_grad_(False)
    model, X, y = make_problem()
    params = list(model.parameters())
    ref = [p.detach().clone() for p in params]
    ref_states = [rule.init_state(p) for p in ref]
    counts = [0] * len(params)
    opt = LearnedOptimizer(params, artifact=rule)
    for k in range(6):
        opt.zero_grad()
        nn.functional.mse_loss(model(X), y).backward()
        if k == 2:
            params[0].grad = None  # that tensor's step count falls behind the others'
        for i, p in enumerate(params):
            if p.grad is not None:
                counts[i] += 1
                ref[i], ref_states[i] = rule(ref[i], p.grad, ref_states[i], torch.tensor(float(counts[i])))
        moments = opt.state[params[1]].get("m")
        opt.step()
        assert (opt.state[params[1]]["m"] is moments) == (path == "in-place" and k > 0)
        for p, r, s, n in zip(params, ref, ref_states, counts):
            torch.testing.assert_close(p.detach(), r)
            assert set(opt.state[p]) == set(s) | {"step"} and float(opt.state[p]["step"]) == n
            for key, value in s.items():
                torch.testing.assert_close(opt.state[p][key], value)


def test_loaded_state_is_not_written_over_by_later_steps():
    model, X, y = make_problem()
    opt = LearnedOptimizer(model.parameters(), artifact=RULES["controller"])
    train(model, opt, X, y, 3)
    saved = opt.state_dict()
    kept = copy.deepcopy(saved)
    opt.load_state_dict(saved)
    train(model, opt, X, y, 4)
    for entry, original in zip(saved["state"].values(), kept["state"].values()):
        assert all(torch.equal(entry[k], original[k]) for k in original)


def test_a_step_count_set_from_outside_is_the_one_the_next_step_continues():
    model, X, y = make_problem()
    opt = LearnedOptimizer(model.parameters(), artifact=RULES["controller"])
    train(model, opt, X, y, 3)
    model2 = copy.deepcopy(model)
    opt2 = LearnedOptimizer(model2.parameters(), artifact=RULES["controller"])
    opt2.load_state_dict(opt.state_dict())
    for p in model2.parameters():
        opt2.state[p]["step"] = torch.tensor(100.0)
    train(model, opt, X, y, 1)
    train(model2, opt2, X, y, 1)
    assert [float(opt.state[p]["step"]) for p in model.parameters()] == [4.0] * 4
    assert [float(opt2.state[p]["step"]) for p in model2.parameters()] == [101.0] * 4
    # The count enters the rule (its progress features), so the two steps differ.
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters()))
