"""Everything with ``device="cuda"``: meta-training, resume across devices, artifacts, estimators, optimizer.

Runs where CUDA is available; elsewhere the whole module is skipped with the reason (the one skip of the
suite). Results on the GPU are compared with the same computation on the CPU, in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import automl_meta as am
from automl_meta.integrations.sklearn import MetaLearnedClassifier, MetaLearnedRegressor
from automl_meta.optim import LearnedOptimizer

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False here)"
)
CUDA = torch.device("cuda", 0)


def trainer(learner_cls=am.learners.MAML, **kw):
    kw = {"iterations": 20, "meta_batch_size": 5, "n_validation_tasks": 10, "eval_every": 10, "verbose": 0, **kw}
    return am.MetaTrainer(learner_cls(am.models.MLP([16, 16])), am.tasks.Sinusoid(shots=5), dtype=torch.float64, **kw)


def assert_close(a, b, tol=1e-8):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].device.type == "cpu" and b[k].device.type == "cpu"
        assert float((a[k] - b[k]).abs().max()) < tol, k


@pytest.mark.parametrize("learner_cls", [am.learners.MAML, am.learners.MetaSGD, am.learners.Reptile, am.learners.IMAML])
def test_meta_training_on_the_gpu_matches_the_cpu(learner_cls):
    gpu = trainer(learner_cls, device="cuda").fit()
    assert gpu.device.type == "cuda"
    cpu = trainer(learner_cls).fit()
    assert_close(gpu.to("cpu").learner.state_dict(), cpu.learner.state_dict())


def test_artifacts_of_a_gpu_run_load_to_the_cpu_and_to_the_gpu_on_request(tmp_path):
    trainer(device="cuda", checkpoint_dir=tmp_path).fit()
    artifact = am.load(tmp_path / "artifact.ameta")
    assert artifact.device == torch.device("cpu")
    on_gpu = am.load(tmp_path / "artifact.ameta", device="cuda")
    assert on_gpu.device.type == "cuda"
    X = np.linspace(-5, 5, 10)[:, None]
    y = np.sin(X[:, 0])
    np.testing.assert_allclose(on_gpu.adapt(X, y).predict(X), artifact.adapt(X, y).predict(X), atol=1e-10)


def test_a_gpu_run_resumes_on_the_cpu(tmp_path):
    class StopAt(am.training.Callback):
        def on_iteration_end(self, trainer, iteration, logs):
            trainer.stop_training = iteration == 13

    trainer(device="cuda", checkpoint_dir=tmp_path, checkpoint_every=5, callbacks=[StopAt()]).fit()
    resumed = trainer(checkpoint_dir=tmp_path, checkpoint_every=5, resume=True).fit()
    assert_close(resumed.learner.state_dict(), trainer().fit().learner.state_dict())


@pytest.mark.parametrize("estimator", ["tbptt", "es"])
def test_unrolled_training_on_the_gpu_matches_the_cpu(estimator):
    def run(device):
        rule = am.learners.HyperController()
        return am.training.UnrolledTrainer(
            rule,
            meta_batch_size=2,
            episodes=2,
            horizon=10,
            unroll=5,
            estimator=estimator,
            es_pairs=2,
            n_validation_batches=1,
            eval_every=2,
            verbose=0,
            device=device,
        ).fit()

    gpu, cpu = run("cuda"), run("cpu")
    assert_close(gpu.to("cpu").learner.state_dict(), cpu.learner.state_dict(), tol=1e-3)  # float32, through Adam


def test_learned_optimizer_follows_its_parameters_to_the_gpu():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    gpu_model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    gpu_model.load_state_dict(model.state_dict())
    gpu_model.to(CUDA)
    X, y = torch.randn(32, 4), torch.randn(32, 1)
    opts = LearnedOptimizer(model.parameters()), LearnedOptimizer(gpu_model.parameters())
    for _ in range(5):
        for m, opt, dev in ((model, opts[0], "cpu"), (gpu_model, opts[1], CUDA)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(m(X.to(dev)), y.to(dev)).backward()
            opt.step()
    assert all(v.device.type == "cuda" for state in opts[1].state.values() for v in state.values())
    for a, b in zip(model.parameters(), gpu_model.parameters()):
        assert float((a - b.cpu()).detach().abs().max()) < 1e-4


@pytest.mark.parametrize("cls", [MetaLearnedClassifier, MetaLearnedRegressor])
def test_estimators_on_the_gpu_predict_as_on_the_cpu(cls):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int) if cls is MetaLearnedClassifier else X[:, 0] - X[:, 1]
    gpu, cpu = cls(random_state=0, device="cuda").fit(X, y), cls(random_state=0).fit(X, y)
    assert gpu.adapt_steps_ == cpu.adapt_steps_
    assert isinstance(gpu.predict(X), np.ndarray)
    np.testing.assert_allclose(gpu.predict(X), cpu.predict(X), atol=1e-8)
