"""OptimizeeTasks: the training problems of learned optimizers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import grad, vmap

from automl_meta.corpus import load_corpus
from automl_meta.exceptions import TaskError
from automl_meta.tasks import OptimizeeBatch, OptimizeeTasks


def test_batches_are_reproducible_and_vary_in_architecture():
    fam = OptimizeeTasks(quadratic_fraction=0.0)
    a, b = fam.sample(3, rng=5), fam.sample(3, rng=5)
    assert a.description == b.description
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    descs = [fam.sample(2, rng=s).description for s in range(30)]
    assert len({(d["width"], d["depth"], d["activation"]) for d in descs}) > 10
    assert {d["task_type"] for d in descs} == {"classification", "regression"}
    assert {d["depth"] for d in descs} == {1, 2, 3}


@pytest.mark.parametrize("quadratic_fraction", [0.0, 1.0])
def test_losses_are_finite_vmap_and_gradient_descent_lowers_them(quadratic_fraction):
    batch = OptimizeeTasks(quadratic_fraction=quadratic_fraction).sample(4, rng=0)
    assert batch.n_tasks == 4
    loss = vmap(batch.loss)(batch.params, batch.train)
    assert loss.shape == (4,) and torch.isfinite(loss).all()
    params = batch.params
    for _ in range(50):
        g = vmap(grad(batch.loss))(params, batch.train)
        params = {k: params[k] - 0.05 * g[k] for k in params}
    assert (vmap(batch.loss)(params, batch.train) < loss).all()
    assert torch.isfinite(vmap(batch.loss)(params, batch.val)).all()


def test_bad_settings_are_refused():
    with pytest.raises(TaskError, match="quadratic_fraction"):
        OptimizeeTasks(quadratic_fraction=2.0)
    with pytest.raises(TaskError, match="activations"):
        OptimizeeTasks(activations=("swish?",))
    with pytest.raises(TaskError, match="widths"):
        OptimizeeTasks(widths=(0, 4))


def _momentum_sgd(batch, lr: float, steps: int = 300) -> dict:
    """Every task's parameters after plain momentum SGD (0.9) on its full training data."""
    params = dict(batch.params)
    state = {k: torch.zeros_like(v) for k, v in params.items()}
    for _ in range(steps):
        g = vmap(grad(batch.loss))(params, batch.train)
        state = {k: 0.9 * state[k] + g[k] for k in params}
        params = {k: params[k] - lr * state[k] for k in params}
    return params


def test_convolutional_problems_learn_shift_tolerant_patterns_that_carry_to_held_out_images():
    tasks = OptimizeeTasks(quadratic_fraction=0.0, cnn_fraction=1.0, n_classes=3, shots=96)
    batch = tasks.sample(2, rng=2)
    size = batch.description["size"]
    assert batch.description["kind"] == "cnn" and batch.train["x"].shape == (2, 96, 1, size, size)
    assert batch.params["w0"].shape[1:] == (batch.description["channels"][0], 1, 3, 3)
    losses = vmap(batch.loss)
    start_train, start_val = losses(batch.params, batch.train), losses(batch.params, batch.val)
    assert torch.allclose(start_train, torch.log(torch.tensor(3.0)), atol=0.2)  # chance at initialisation
    params = _momentum_sgd(batch, lr=0.1)
    assert (losses(params, batch.train) < 0.5 * start_train).all()
    assert (losses(params, batch.val) < 0.5 * start_val).all()  # the patterns, not the noise, were learned


def test_convolutional_problems_are_off_by_default_and_out_of_the_config_until_asked_for():
    assert "cnn_fraction" not in OptimizeeTasks().get_config()
    assert all(OptimizeeTasks().sample(2, rng=s).description["kind"] != "cnn" for s in range(20))
    kinds = {OptimizeeTasks(cnn_fraction=0.5).sample(2, rng=s).description["kind"] for s in range(20)}
    assert kinds == {"quadratic", "mlp", "cnn"}
    assert OptimizeeTasks(cnn_fraction=0.5).get_config()["cnn_fraction"] == 0.5
    with pytest.raises(TaskError, match="cnn_fraction"):
        OptimizeeTasks(cnn_fraction=1.5)


def _autoencoder(network: str) -> OptimizeeBatch:
    tasks = OptimizeeTasks(quadratic_fraction=0.0, autoencoder_fraction=1.0, shots=96, widths=32)
    return next(b for s in range(20) if (b := tasks.sample(2, rng=s)).description["network"] == network)


def test_mlp_autoencoders_reconstruct_their_images_through_a_narrow_code_and_carry_to_held_out_images():
    batch = _autoencoder("mlp")
    d = batch.description
    pixels = d["size"] ** 2
    assert d["kind"] == "autoencoder" and 4 <= d["code"] <= 16 and d["size"] % 2 == 0
    assert batch.train["x"].shape == (2, 96, pixels)
    assert [tuple(batch.params[f"w{i}"].shape[1:]) for i in range(4)] == [
        (32, pixels),
        (d["code"], 32),
        (32, d["code"]),
        (pixels, 32),
    ]
    _assert_learns_to_reconstruct(batch)


def test_conv_autoencoders_halve_the_images_and_transpose_back_to_their_shape():
    batch = _autoencoder("conv")
    d, x = batch.description, batch.train["x"]
    assert d["kind"] == "autoencoder" and all(4 <= c <= 16 for c in d["channels"]) and d["size"] % 2 == 0
    assert x.shape == (2, 96, 1, d["size"], d["size"])
    c1, c2 = d["channels"]
    shapes = {k: tuple(v.shape[1:]) for k, v in batch.params.items()}
    assert shapes == {
        "w0": (c1, 1, 3, 3),
        "b0": (c1,),
        "w1": (c2, c1, 3, 3),
        "b1": (c2,),
        "w2": (c2, 1, 4, 4),
        "b2": (1,),
    }
    # PyTorch's bound, 1 / sqrt(fan-in); a transposed convolution's fan-in is its outputs x k x k (here 16).
    torch.manual_seed(0)
    torch_w2 = nn.ConvTranspose2d(c2, 1, 4).weight.detach()
    for w in (batch.params["w2"], torch_w2):
        assert 0.8 * 0.25 < w.abs().max() <= 0.25
    _assert_learns_to_reconstruct(batch)


def _assert_learns_to_reconstruct(batch: OptimizeeBatch) -> None:
    part = batch.minibatch(16, torch.Generator().manual_seed(0))
    assert part["x"].shape[:2] == (2, 16)
    losses = vmap(batch.loss)
    start_train, start_val = losses(batch.params, batch.train), losses(batch.params, batch.val)
    # Images are their own targets: at initialisation the output is small, so the loss is about x's mean square.
    torch.testing.assert_close(
        start_train, batch.train["x"].square().mean((1, 2, *range(3, batch.train["x"].dim()))), rtol=0.5, atol=0.0
    )
    params = _momentum_sgd(batch, lr=0.05)
    assert (losses(params, batch.train) < 0.5 * start_train).all()
    assert (losses(params, batch.val) < 0.5 * start_val).all()  # the images' structure, not the noise


def test_autoencoders_are_off_by_default_and_out_of_the_config_until_asked_for():
    assert "autoencoder_fraction" not in OptimizeeTasks(cnn_fraction=0.3).get_config()
    kinds = {OptimizeeTasks(autoencoder_fraction=0.5).sample(2, rng=s).description["kind"] for s in range(30)}
    assert kinds == {"quadratic", "mlp", "autoencoder"}
    assert OptimizeeTasks(autoencoder_fraction=0.5).get_config()["autoencoder_fraction"] == 0.5
    with pytest.raises(TaskError, match="autoencoder_fraction"):
        OptimizeeTasks(autoencoder_fraction=2.0)


def test_real_tables_train_some_mlp_batches_from_their_own_rows_and_enter_the_config():
    tables = load_corpus("meta-train", max_rows=300)
    tables = [t for t in tables if t.task_type == "classification"][:3] + [
        t for t in tables if t.task_type == "regression"
    ][:3]
    tasks = OptimizeeTasks(quadratic_fraction=0.0, real_tasks=tables, real_fraction=0.5, n_features=(2, 6))
    config = tasks.get_config()
    assert config["real_fraction"] == 0.5 and config["real_tasks"] == sorted(t.name for t in tables)
    batches = [tasks.sample(3, rng=s) for s in range(30)]
    assert {b.description["data"] for b in batches} == {"real", "synthetic"}
    real = [b for b in batches if b.description["data"] == "real"]
    assert {b.description["task_type"] for b in real} == {"classification", "regression"}
    for b in real:  # columns standardised and clipped, padded to the widest draw; finite losses
        x, mask = b.train["x"], b.train["mask"]
        assert x.shape[-1] == 6 and torch.isfinite(vmap(b.loss)(b.params, b.train)).all()
        assert x.abs().max() <= 6.0 and (mask.sum(1) >= 1).all()
    again = OptimizeeTasks(quadratic_fraction=0.0, real_tasks=tables, real_fraction=0.5, n_features=(2, 6))
    assert torch.equal(again.sample(3, rng=7).train["x"], tasks.sample(3, rng=7).train["x"])
    assert "real_fraction" not in OptimizeeTasks().get_config()
    with pytest.raises(TaskError, match="needs real_tasks"):
        OptimizeeTasks(real_fraction=0.5)
    with pytest.raises(TaskError, match="real_fraction"):
        OptimizeeTasks(real_tasks=tables, real_fraction=-0.1)


def test_held_out_sets_have_query_shots_rows_of_every_kind_and_enter_the_config_only_when_set():
    assert "query_shots" not in OptimizeeTasks().get_config()
    tasks = OptimizeeTasks(quadratic_fraction=0.0, cnn_fraction=0.4, autoencoder_fraction=0.5, query_shots=96)
    assert tasks.get_config()["query_shots"] == 96
    rows = {}
    for seed in range(30):
        batch = tasks.sample(2, rng=seed)
        rows.setdefault(batch.description["kind"], set()).add(batch.val["x"].shape[1])
    assert rows == {"mlp": {96}, "cnn": {96}, "autoencoder": {96}}
    default = OptimizeeTasks(quadratic_fraction=0.0).sample(2, rng=0)
    assert default.val["x"].shape[1] == 64  # the default held-out size is unchanged
    with pytest.raises(TaskError, match="query_shots"):
        OptimizeeTasks(query_shots=0)
