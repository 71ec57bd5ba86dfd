"""The quick run of the default learned-optimizer training writes loadable artifacts."""

from __future__ import annotations

import torch

import automl_meta as am


def test_quick_training_writes_three_rules_and_a_default(run_quick_study):
    tmp_path = run_quick_study("train_default_l2o")
    names = {p.stem for p in (tmp_path / "l2o").glob("*.ameta")}
    assert names == {"hyper_controller", "mlp_optimizer", "lstm_optimizer"}
    default = am.load(tmp_path / "default-l2o.ameta")
    assert default.learner.name == "hyper_controller"
    assert default.training["trainer"] == "unrolled" and default.seed == 0
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    am.optim.LearnedOptimizer([p], artifact=default).step()
    assert (p < 1).all()
