"""The learning-rate development aid: its parts, the shared problem options, and its quick run end to end."""

from __future__ import annotations

import argparse
import csv
import json
import math

import pytest
import torch

import automl_meta as am

from .conftest import STUDIES, study_module


@pytest.fixture
def rates(monkeypatch):
    monkeypatch.syspath_prepend(str(STUDIES))
    return study_module("l2o_rates")


def test_the_best_rate_is_the_lowest_finite_loss_and_nan_when_none_is(rates):
    losses = [math.nan, 2.0, 0.5, math.inf, 1.0, 3.0, 0.7]
    assert rates.best_rate(losses) == pytest.approx(rates.LRS[2])
    assert math.isnan(rates.best_rate([math.nan] * len(rates.LRS)))


def test_a_rules_rate_is_read_from_its_state_and_adam_has_none(rates):
    batch = am.tasks.OptimizeeTasks(quadratic_fraction=0.0).sample(1, rng=0)
    controller = am.learners.HyperController(base="adam", interval=10)  # untrained: it starts near 3e-3
    *_, opt = rates.train(batch, lambda ps: am.optim.LearnedOptimizer(ps, artifact=controller), 5, 16, 0)
    assert rates.rule_rate(opt) == pytest.approx(3e-3, rel=0.1)
    *_, adam = rates.train(batch, lambda ps: torch.optim.Adam(ps, lr=1e-3), 5, 16, 0)
    assert math.isnan(rates.rule_rate(adam))


def test_the_same_runs_give_the_same_losses_and_a_larger_rate_moves_further(rates):
    batch = am.tasks.OptimizeeTasks(quadratic_fraction=0.0).sample(1, rng=1)
    start = float(batch.loss({k: v[0] for k, v in batch.params.items()}, {k: v[0] for k, v in batch.train.items()}))
    slow = rates.train(batch, lambda ps: torch.optim.Adam(ps, lr=1e-4), 20, 16, 3)
    again = rates.train(batch, lambda ps: torch.optim.Adam(ps, lr=1e-4), 20, 16, 3)
    fast = rates.train(batch, lambda ps: torch.optim.Adam(ps, lr=1e-2), 20, 16, 3)
    assert slow[:2] == again[:2]  # the same mini-batches, the same start
    assert abs(fast[0] - start) > abs(slow[0] - start)


def test_a_run_that_diverges_ends_with_nan_losses_and_loses(rates):
    class Refusing(torch.optim.SGD):  # what LearnedOptimizer does with a non-finite gradient
        def step(self, closure=None):
            raise FloatingPointError("non-finite gradient")

    batch = am.tasks.OptimizeeTasks(quadratic_fraction=0.0).sample(1, rng=2)
    train, val, _ = rates.train(batch, lambda ps: Refusing(ps, lr=0.1), 5, 16, 0)
    assert math.isnan(train) and math.isnan(val)
    assert rates.best_rate([train, *[1.0] * (len(rates.LRS) - 1)]) == pytest.approx(rates.LRS[1])


@pytest.mark.parametrize("bad", [["--problems", "0"], ["--steps", "0"], ["--batch-size", "64", "16"]])
def test_bad_sizes_are_refused_with_a_message_before_any_work(rates, bad, capsys):
    with pytest.raises(SystemExit):
        rates.main(["--quick", *bad])
    assert "must be at least 1" in capsys.readouterr().err


def test_train_default_l2o_and_the_aid_share_the_problem_options(monkeypatch):
    monkeypatch.syspath_prepend(str(STUDIES))
    train_default_l2o = study_module("train_default_l2o")
    p = argparse.ArgumentParser()
    train_default_l2o.add_problem_options(p)
    tasks = train_default_l2o.problems(p.parse_args(["--widths", "32", "64", "--shots", "80", "96"]))
    assert tasks.widths == (32, 64) and tasks.get_config()["shots"] == [80, 96]
    default = train_default_l2o.problems(p.parse_args([]))
    assert default.get_config() == am.tasks.OptimizeeTasks().get_config()  # unset options keep the defaults


def test_quick_run_reports_rates_per_kind_next_to_the_suites(run_quick_study):
    out = run_quick_study("l2o_rates", "--cnn-fraction", "0.5")
    with open(out / "l2o_rates.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    allowed = {1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2, 3.16e-2, 1e-1}
    for r in rows:
        assert any(float(r["best_rate_train"]) == pytest.approx(a, rel=0.01) for a in allowed)
        assert 1e-5 <= float(r["rule_rate"]) <= 0.03  # default-l2o's rates lie in its controller's range
    kinds = json.loads((out / "l2o_rates.json").read_text())["kinds"]
    assert kinds["all"]["problems"] == 4 and kinds["all"]["rule_diverged"] == 0
    assert sum(v["problems"] for k, v in kinds.items() if k != "all" and "suite" not in k) == 4
    assert kinds["held-out suite"]["problems"] == 12  # read from the committed study results
    assert (out / "l2o_rates.png").stat().st_size > 0
