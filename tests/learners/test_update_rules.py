"""Learned update rules: shapes, batching under vmap, configs, preprocessing and bounded rates."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import vmap

import automl_meta as am
from automl_meta.learners import HyperController, LSTMOptimizer, MLPOptimizer
from automl_meta.learners.hyper_controller import HYPERGRADIENT_SPAN, LR_RANGES
from automl_meta.learners.lstm_optimizer import preprocess_gradient

RULES = [
    LSTMOptimizer,
    MLPOptimizer,
    HyperController,
    lambda **kw: HyperController(base="sgd", **kw),
    lambda **kw: HyperController(interval=3, **kw),
    lambda **kw: HyperController(interval=3, hypergradient=0.2, **kw),
    lambda **kw: HyperController(interval=3, bias_correction=True, **kw),
    lambda **kw: HyperController(interval=3, max_momentum=0.5, **kw),
]
IDS = [
    "lstm",
    "mlp",
    "controller-adam",
    "controller-sgd",
    "controller-every-3",
    "controller-hypergradient",
    "controller-bias-corrected",
    "controller-max-momentum",
]


@pytest.mark.parametrize("make", RULES, ids=IDS)
def test_update_keeps_shape_and_vmapped_equals_loop(make):
    rule = make(seed=3)
    gen = torch.Generator().manual_seed(0)
    P, G = torch.randn(4, 3, 5, generator=gen), torch.randn(4, 3, 5, generator=gen)
    S = vmap(rule.init_state)(P)
    step = torch.tensor(4.0)  # not the first step; a call step of a controller with interval 3
    batched, _ = vmap(lambda p, g, s: rule(p, g, s, step))(P, G, S)
    looped = torch.stack([rule(P[i], G[i], rule.init_state(P[i]), step)[0] for i in range(4)])
    assert batched.shape == P.shape
    torch.testing.assert_close(batched, looped)
    assert not torch.equal(batched, P)  # it moves the parameters


@pytest.mark.parametrize("make", RULES, ids=IDS)
def test_config_round_trip_and_seed(make):
    rule = make(seed=1)
    again = am.learners.from_config(rule.get_config())
    assert type(again) is type(rule) and again.get_config() == rule.get_config()
    for (k, a), b in zip(rule.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k  # the seed fixes the initial weights
    other = make(seed=2)
    assert any(not torch.equal(a, b) for a, b in zip(rule.state_dict().values(), other.state_dict().values()))


def test_preprocessing_is_finite_and_matches_the_paper():
    g = torch.tensor([0.0, 1e-30, -1e-30, 1e-3, 1.0, -2.0, 1e30, -1e30])
    x = preprocess_gradient(g, p=10.0)
    assert torch.isfinite(x).all()
    # Small gradients: (-1, e^p g); large ones: (log|g| / p, sign g).
    torch.testing.assert_close(x[:3, 0], torch.full((3,), -1.0))
    torch.testing.assert_close(x[3], torch.tensor([math.log(1e-3) / 10, 1.0]))
    torch.testing.assert_close(x[5], torch.tensor([math.log(2.0) / 10, -1.0]))
    torch.testing.assert_close(x[6, 0], torch.tensor(math.log(1e30) / 10))


@pytest.mark.parametrize("base", ["adam", "sgd"])
def test_controller_rates_stay_in_their_ranges_even_with_wild_weights(base):
    rule = HyperController(base=base).requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    for p in rule.parameters():
        p.mul_(1000.0)
    p = torch.randn(10, generator=gen)
    state = rule.init_state(p)
    lo, hi, _ = LR_RANGES[base]
    for t in range(1, 20):
        g = torch.randn(10, generator=gen) * 10.0 ** (t % 7 - 3)
        p_new, state = rule(p, g, state, torch.tensor(float(t)))
        assert lo * 0.999 <= float(state["lr"]) <= hi * 1.001
        assert torch.isfinite(p_new).all()
        if base == "adam":  # an Adam step moves each coordinate by a few lr at most, whatever the gradients
            assert float((p_new - p).abs().max()) <= 5 * hi
        p = p_new


def test_controller_starts_as_adam_near_its_initial_rate():
    rule = HyperController(base="adam").requires_grad_(False)
    p = torch.zeros(100)
    g = torch.randn(100)
    new_p, state = rule(p, g, rule.init_state(p), torch.tensor(1.0))
    lr = float(state["lr"])
    assert 1e-3 < lr < 1e-2
    # First Adam step (m = g, v = g^2): every coordinate moves by lr against its gradient's sign.
    torch.testing.assert_close(new_p, -lr * torch.sign(g), atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("base", ["adam", "sgd"])
def test_a_controller_with_an_interval_sets_its_rates_only_on_its_call_steps(base):
    rule = HyperController(base=base, interval=4, seed=0).requires_grad_(False)
    every = HyperController(base=base, seed=0).requires_grad_(False)  # same weights, a call on every step
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(10, generator=gen)
    state, lrs = rule.init_state(p), []
    for t in range(1, 10):
        g = torch.randn(10, generator=gen) * 10.0 ** (t % 3)
        before = {k: v.clone() for k, v in state.items()}
        p_new, state = rule(p, g, state, torch.tensor(float(t)))
        lrs.append(float(state["lr"]))
        if t % 4 == 1:  # a call: the controller's step, as the rule without interval takes it from this state
            ref, ref_state = every(p, g, {k: before[k] for k in every.init_state(p)}, torch.tensor(float(t)))
            torch.testing.assert_close(p_new, ref)
            assert not torch.equal(state["h"], before["h"])
        else:  # between calls: the controller's state and rates stay, the moments move on
            for k in ("h", "c", "u_lr", "log_g_avg", "lr", "beta", "wd"):
                assert torch.equal(state[k], before[k]), k
            assert not torch.equal(state["m"], before["m"]) and not torch.equal(p_new, p)
        p = p_new
    assert lrs[0] == lrs[3] and lrs[4] == lrs[7] and lrs[3] != lrs[4]


def _hypergradient_run(against: bool, gain: float = 0.5, steps: int = 30) -> list[float]:
    """The rates of a hypergradient controller on gradients that keep one direction, or that point
    against the momentum (as after steps that overshoot)."""
    rule = HyperController(hypergradient=gain, seed=0).requires_grad_(False)
    direction = torch.randn(20, generator=torch.Generator().manual_seed(0))
    p = torch.zeros(20)
    state, rates = rule.init_state(p), []
    for t in range(1, steps + 1):
        g = -state["m"] if against and t > 1 else direction
        p, state = rule(p, g, state, torch.tensor(float(t)))
        rates.append(math.exp(float(state["log_lr"])))
    return rates


def test_the_hypergradient_rate_rises_while_gradients_agree_and_falls_while_they_oppose_the_momentum():
    steady, flipping = _hypergradient_run(False), _hypergradient_run(True)
    start = LR_RANGES["adam"][2]
    assert steady[0] == pytest.approx(start) and flipping[0] == pytest.approx(start)  # no move on step 1
    assert all(b >= a for a, b in zip(steady, steady[1:]))
    assert steady[-1] == pytest.approx(LR_RANGES["adam"][1])  # up to the top of the rate's range, no further
    assert all(b <= a for a, b in zip(flipping, flipping[1:])) and flipping[-1] < start / 10


def test_a_hypergradient_controller_scales_its_rate_within_the_span():
    rule = HyperController(hypergradient=0.2, seed=0).requires_grad_(False)
    lo, hi, start = LR_RANGES["adam"]
    for u in (0.0, 0.5, 1.0):
        rule.head.bias.fill_(math.log(max(u, 1e-9) / max(1 - u, 1e-9)))
        rule.head.weight.zero_()
        p = torch.zeros(6)
        _, state = rule(p, torch.ones(6), rule.init_state(p), torch.tensor(1.0))
        assert float(state["lr"]) == pytest.approx(start * HYPERGRADIENT_SPAN ** (2 * u - 1), rel=1e-4)
    assert HyperController(hypergradient=0.0).get_config().get("hypergradient") is None  # earlier configs stay


@pytest.mark.parametrize("bound", [0.99, 0.92, 0.5])
def test_controller_momentum_stays_under_its_bound(bound):
    """The untrained controller starts at Adam's 0.9 (just under a lower bound); with wild weights its
    momentum goes anywhere in [0, max_momentum], never above."""
    rule = HyperController(max_momentum=bound, interval=1, seed=0).requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(10, generator=gen)
    _, state = rule(p, torch.randn(10, generator=gen), rule.init_state(p), torch.tensor(1.0))
    m = state["m"]  # the first step's momentum is the gradient; the second shows the rate it decays at
    g = torch.randn(10, generator=gen)
    _, state = rule(p, g, state, torch.tensor(2.0))
    beta = float(((state["m"] - g) / (m - g)).mean())
    assert beta == pytest.approx(min(0.9, 0.99 * bound), rel=2e-3)  # the head reads a near-zero state
    wild = HyperController(max_momentum=bound, interval=2, seed=0).requires_grad_(False)
    for w in wild.parameters():
        w.mul_(1000.0)
    state, seen = wild.init_state(p), []
    for t in range(1, 30):
        p, state = wild(p, torch.randn(10, generator=gen) * 10.0 ** (t % 5 - 2), state, torch.tensor(float(t)))
        seen.append(float(state["beta"]))
    assert 0.5 * bound < max(seen) <= bound * (1 + 1e-6)  # it reaches towards the bound (float32), not past it


def test_max_momentum_is_recorded_only_when_set():
    assert "max_momentum" not in HyperController(seed=0).get_config()  # earlier configs stay as they were
    config = HyperController(max_momentum=0.92, seed=0).get_config()
    assert config["max_momentum"] == 0.92
    assert am.learners.from_config(config).max_momentum == 0.92
    assert am.learners.from_config(HyperController(seed=0).get_config()).max_momentum == 0.99


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="base must be one of"):
        HyperController(base="rmsprop")
    for bad in (0, -0.5, float("nan"), "0.9"):
        with pytest.raises(ValueError, match="max_momentum must be a positive"):
            HyperController(max_momentum=bad)
    for bad in (1, 1.5):
        with pytest.raises(ValueError, match="max_momentum must be below 1"):
            HyperController(max_momentum=bad)
    with pytest.raises(ValueError, match="interval"):
        HyperController(interval=0)
    with pytest.raises(ValueError, match="hypergradient"):
        HyperController(hypergradient=-0.1)
    with pytest.raises(ValueError, match="hidden_size"):
        LSTMOptimizer(hidden_size=0)
    with pytest.raises(ValueError, match="hidden_sizes"):
        MLPOptimizer(hidden_sizes=[])
    with pytest.raises(ValueError, match="seed"):
        MLPOptimizer(seed=-1)


def _fixed_rate_controller(lr: float, beta: float, bias_correction: bool) -> HyperController:
    """A controller whose output layer ignores its inputs: learning rate ``lr``, momentum ``beta``, no decay."""
    rule = HyperController(bias_correction=bias_correction, seed=0).requires_grad_(False)
    lr_min, lr_max, _ = LR_RANGES["adam"]
    u = [math.log(lr / lr_min) / math.log(lr_max / lr_min), beta / rule.max_momentum]
    rule.head.weight.zero_()
    rule.head.bias.copy_(torch.tensor([math.log(x / (1 - x)) for x in u] + [-60.0]))
    return rule


@pytest.mark.parametrize("path", ["forward", "optimizer"])
def test_bias_corrected_controller_at_fixed_rates_steps_like_adam(path):
    """With its rates held fixed, the bias-corrected controller is torch.optim.Adam; without the correction
    its first gradient weighs on the moments and its steps differ."""
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(50, generator=gen) * 3.0 / (1 + k) for k in range(30)]  # shrinking, as in training
    adam_p = torch.zeros(50, requires_grad=True)
    adam = torch.optim.Adam([adam_p], lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    for g in grads:
        adam_p.grad = g.clone()
        adam.step()
    for corrected in (True, False):
        rule = _fixed_rate_controller(1e-2, 0.9, corrected)
        p = torch.zeros(50)
        if path == "forward":
            state = rule.init_state(p)
            for k, g in enumerate(grads):
                p, state = rule(p, g, state, torch.tensor(float(k + 1)))
        else:
            p.requires_grad_(True)
            opt = am.optim.LearnedOptimizer([p], artifact=rule)
            for g in grads:
                p.grad = g.clone()
                opt.step()
        if corrected:
            torch.testing.assert_close(p.detach(), adam_p.detach(), rtol=1e-4, atol=1e-6)
        else:
            assert (p.detach() - adam_p.detach()).abs().max() > 1e-2


def test_controller_configs_saved_before_bias_correction_load_without_it():
    config = HyperController(interval=10, seed=0).get_config()
    assert "bias_correction" not in config  # as saved before the option existed: their records still match
    assert am.learners.from_config(config).bias_correction is False
    corrected = HyperController(bias_correction=True, seed=0).get_config()
    assert am.learners.from_config(corrected).bias_correction is True
    assert am.load("default-l2o").learner.bias_correction is False  # the shipped rule is as meta-trained


def test_the_shipped_controller_keeps_its_momentum_near_adams():
    """``default-l2o`` ships with its momentum bounded by 0.92: on a mini-batch run its tensors' momenta stay at
    most that, near Adam's 0.9 (meta-trained with 0.99, the same weights settle near 0.97)."""
    gen = torch.Generator().manual_seed(0)
    X, y = torch.randn(256, 8, generator=gen), torch.randn(256, 1, generator=gen)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    opt = am.optim.LearnedOptimizer(model.parameters(), artifact="default-l2o")
    for _ in range(200):
        rows = torch.randint(0, 256, (32,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(X[rows]), y[rows]).backward()
        opt.step()
    betas = [float(opt.state[p]["beta"]) for p in model.parameters()]
    assert all(0.8 < b <= 0.92 * (1 + 1e-6) for b in betas), betas
