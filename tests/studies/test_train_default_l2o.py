"""The quick run of the default learned-optimizer training writes loadable artifacts."""

from __future__ import annotations

import pytest
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


def _fine_tune(tmp_path, name: str, shift: float, interval: int = 10) -> str:
    """``default-l2o`` with every weight shifted by ``shift``, saved as if fine-tuned from it with ``--init``."""
    base = am.load("default-l2o")
    rule = am.learners.HyperController(base="adam", interval=interval)
    rule.load_state_dict({k: v + shift for k, v in base.learner.state_dict().items()})
    checksum = study_module("train_default_l2o").weights_sha256(base.learner)
    training = {"trainer": "unrolled", "init": {"artifact": "default-l2o", "weights_sha256": checksum}}
    return str(am.MetaArtifact(rule, training=training, seed=0).save(tmp_path / f"{name}.ameta"))


def test_average_writes_the_mean_of_the_fine_tunes_weights_and_lists_them(run_quick_study, tmp_path):
    members = [_fine_tune(tmp_path, "a", 0.5), _fine_tune(tmp_path, "b", -0.25)]
    out = run_quick_study("train_default_l2o", "--average", *members)
    soup = am.load(out / "default-l2o.ameta")
    start = am.load("default-l2o").learner.state_dict()
    assert all(torch.allclose(soup.learner.state_dict()[k], v + 0.125, atol=1e-6) for k, v in start.items())
    checksum = study_module("train_default_l2o").weights_sha256
    listed = [member["weights_sha256"] for member in soup.training["average_of"]]
    assert listed == [checksum(am.load(path).learner) for path in members]
    assert soup.training["trainer"] == "unrolled" and soup.metrics == {"members": 2}


def test_average_refuses_rules_that_differ_or_did_not_start_from_the_same_weights(tmp_path):
    averaged = study_module("train_default_l2o").averaged
    one, other = _fine_tune(tmp_path, "a", 0.5), _fine_tune(tmp_path, "b", 0.5, interval=5)
    with pytest.raises(SystemExit, match="different rules or settings"):
        averaged([one, other])
    for init in ({}, {"init": {"artifact": "elsewhere", "weights_sha256": "0" * 64}}):
        stranger = am.MetaArtifact(am.load(one).learner, training={"trainer": "unrolled", **init}, seed=1)
        with pytest.raises(SystemExit, match="same weights"):
            averaged([one, str(stranger.save(tmp_path / "stranger.ameta"))])


def test_derive_bounds_the_momentum_of_a_controller_and_keeps_its_weights(run_quick_study):
    out = run_quick_study("train_default_l2o", "--derive", "default-l2o", "--max-momentum", "0.8")
    source, bounded = am.load("default-l2o"), am.load(out / "default-l2o.ameta")
    assert bounded.learner.max_momentum == 0.8
    assert {k: v for k, v in bounded.learner.get_config().items() if k != "max_momentum"} == {
        k: v for k, v in source.learner.get_config().items() if k != "max_momentum"
    }
    assert all(torch.equal(bounded.learner.state_dict()[k], v) for k, v in source.learner.state_dict().items())
    record = bounded.training["derived_from"]
    assert record["artifact"] == "default-l2o" and record["created"] == source.created
    assert record["weights_sha256"] == study_module("train_default_l2o").weights_sha256(source.learner)
    assert bounded.task_family == source.task_family and bounded.seed == source.seed
    # The bound is what the optimizer uses: no tensor's momentum goes above it.
    model = torch.nn.Linear(4, 2)
    opt = am.optim.LearnedOptimizer(model.parameters(), artifact=bounded)
    for _ in range(25):
        opt.zero_grad()
        model(torch.randn(8, 4)).square().mean().backward()
        opt.step()
    assert all(float(opt.state[p]["beta"]) <= 0.8 * (1 + 1e-6) for p in model.parameters())


def test_fine_tunes_keep_the_init_rules_momentum_bound_unless_given(tmp_path):
    module = study_module("train_default_l2o")
    bounded = am.learners.from_config({**am.load("default-l2o").learner.get_config(), "max_momentum": 0.7})
    path = str(am.MetaArtifact(bounded, training={"trainer": "unrolled"}, seed=0).save(tmp_path / "b.ameta"))
    assert module.bound_of(None, path) == 0.7
    assert module.bound_of(0.95, path) == 0.95
    assert module.bound_of(None, None) == am.learners.HyperController().max_momentum
    with pytest.raises(SystemExit):
        module.main(["--derive", "default-l2o", "--out", str(tmp_path)])  # no bound given
    with pytest.raises(SystemExit, match="not hyper_controller"):
        module.derived(str(am.MetaArtifact(am.learners.LSTMOptimizer(), seed=0).save(tmp_path / "l.ameta")), 0.9)
