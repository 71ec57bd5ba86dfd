"""OptimizeeTasks: the training problems of learned optimizers."""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, vmap

from automl_meta.exceptions import TaskError
from automl_meta.tasks import OptimizeeTasks


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
