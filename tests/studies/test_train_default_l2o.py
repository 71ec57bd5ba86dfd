"""The quick run of the default learned-optimizer training writes loadable artifacts."""

from __future__ import annotations

import torch

import automl_meta as am

from .conftest import study_module


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


def test_quick_fine_tuning_of_default_l2o_with_pes_changes_only_the_named_weights(run_quick_study):
    tmp_path = run_quick_study(
        "train_default_l2o",
        *("--only", "hyper_controller", "--interval", "10", "--init", "default-l2o"),
        *("--estimator", "pes", "--es-pairs", "2", "--train-only", "head."),
        *("--shots", "80", "96", "--query-shots", "48", "--loss-every", "5"),
    )
    tuned = am.load(tmp_path / "l2o" / "hyper_controller.ameta")
    assert tuned.training["estimator"] == "pes" and tuned.training["es_pairs"] == 2
    assert tuned.task_family["config"]["shots"] == [80, 96]  # the problem sizes it was meta-trained on
    assert tuned.task_family["config"]["query_shots"] == 48
    assert tuned.training["loss_every"] == 5
    start, after = am.load("default-l2o").learner.state_dict(), tuned.learner.state_dict()
    assert all(torch.equal(after[k], v) != k.startswith("head.") for k, v in start.items())
    # The artifact records where its weights started.
    init = tuned.training["init"]
    assert init["artifact"] == "default-l2o" and init["created"] == am.load("default-l2o").created
    checksum = study_module("train_default_l2o").weights_sha256
    assert init["weights_sha256"] == checksum(am.load("default-l2o").learner)
    assert init["weights_sha256"] != checksum(tuned.learner)
