"""The ``device=`` settings on a machine without a GPU: checked at once, with what to do; the CPU works as before.

The same code paths on a GPU are exercised by tests/test_gpu.py where CUDA is available.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import automl_meta as am
from automl_meta.engine import devices, resolve_device
from automl_meta.integrations.sklearn import MetaLearnedRegressor


@pytest.fixture
def no_gpu(monkeypatch):
    """This machine as one without CUDA or MPS, whatever it has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)


@pytest.mark.parametrize("given", ["cpu", torch.device("cpu"), None])
def test_the_cpu_in_every_spelling(given):
    assert resolve_device(given) == torch.device("cpu")


@pytest.mark.parametrize(
    "given, message",
    [
        ("tpu", "device must be 'cpu', 'cuda', 'cuda:<index>', 'mps' or a torch.device, got 'tpu'"),
        ("meta", "got 'meta'"),
        (0, "got 0"),
        ("cuda", "CUDA is not available here .* use device='cpu'"),
        ("cuda:1", "CUDA is not available here"),
        ("mps", "no MPS device .* use device='cpu'"),
    ],
)
def test_unusable_devices_are_refused_with_what_to_do(no_gpu, given, message):
    with pytest.raises(ValueError, match=message):
        resolve_device(given)


def test_a_gpu_index_beyond_the_machines_gpus_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"has 2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")


def test_float64_on_mps_is_refused(monkeypatch):
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert resolve_device("mps", torch.float32) == torch.device("mps")
    with pytest.raises(ValueError, match="MPS device does not compute in float64"):
        resolve_device("mps", torch.float64)


def test_trainers_refuse_a_missing_gpu_when_built(no_gpu):
    with pytest.raises(ValueError, match="CUDA is not available"):
        am.MetaTrainer(am.learners.MAML(am.models.MLP([8])), am.tasks.Sinusoid(), device="cuda")
    with pytest.raises(ValueError, match="no MPS device"):
        am.training.UnrolledTrainer(am.learners.HyperController(), device="mps")


def test_meta_training_on_the_cpu_device_is_the_default_run():
    def run(**kw):
        learner = am.learners.MetaSGD(am.models.MLP([8]))
        return am.MetaTrainer(
            learner, am.tasks.Sinusoid(shots=5), iterations=5, meta_batch_size=4, n_validation_tasks=4, verbose=0, **kw
        ).fit()

    a, b = run(), run(device=torch.device("cpu"))
    assert all(torch.equal(v, b.learner.state_dict()[k]) for k, v in a.learner.state_dict().items())
    assert a.device == torch.device("cpu")


def test_artifacts_load_to_the_cpu_and_move_on_request(no_gpu, tmp_path):
    artifact = am.load("default-l2o")
    assert artifact.device == torch.device("cpu")
    assert am.load("default-l2o", device="cpu").device == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        am.load("default-l2o", device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        artifact.to("cuda")
    assert artifact.to(torch.device("cpu")) is artifact


def test_estimators_take_a_device(no_gpu):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X[:, 0] - X[:, 1]
    reg = MetaLearnedRegressor(random_state=0, device="cpu").fit(X, y)
    default = MetaLearnedRegressor(random_state=0).fit(X, y)
    assert reg.get_params()["device"] == "cpu" and default.get_params()["device"] == "cpu"
    np.testing.assert_array_equal(reg.predict(X), default.predict(X))
    with pytest.raises(ValueError, match="CUDA is not available"):
        MetaLearnedRegressor(device="cuda").fit(X, y)
    with pytest.raises(ValueError, match="device must be"):
        MetaLearnedRegressor(device="gpu").fit(X, y)
