"""The leave-one-task-out development study of the sampler: its encoding, lookup objective and report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from .conftest import study_module


def test_configurations_map_to_the_unit_cube_on_each_parameters_scale():
    dists = {
        "C": FloatDistribution(0.01, 100.0, log=True),
        "k": IntDistribution(1, 11),
        "kind": CategoricalDistribution(["a", "b", "c"]),
        "extra": FloatDistribution(0.0, 1.0),
    }
    u = study_module("sampler_loo").unit(dists, {"C": 1.0, "k": 6, "kind": "b"})
    np.testing.assert_allclose(u, [0.5, 0.5, 0.0, 1.0, 0.0, 0.5])  # log midpoint; one-hot; absent: 0.5


def test_the_lookup_objective_scores_each_trial_with_a_loss_the_held_out_task_measured():
    from automl_meta import knowledge

    study, kb = study_module("sampler_loo"), knowledge.load()
    block = kb.blocks[0]
    t = study.held_out_tasks(block, 1)[0]
    losses = block.runs()[t][1]
    curve = study.regret(block, t, study.trial_losses(kb, block, t, "RandomSampler", 0, {}))
    assert len(curve) == study.TRIALS["RandomSampler"]
    assert np.all(np.diff(curve) <= 0) and 0.0 <= curve[-1] <= curve[0] <= 1.0
    # Each best-so-far regret is that of a configuration the task ran.
    regrets = (losses - losses.min()) / (losses.max() - losses.min())
    assert all(np.isclose(regrets, r).any() for r in curve)


def test_a_quick_run_reports_every_sampler_and_block(tmp_path):
    summary = study_module("sampler_loo").main(
        ["--quick", "--out", str(tmp_path), "--samplers", "MetaLearnedSampler,RandomSampler"]
    )
    rows = (tmp_path / "sampler_loo.csv").read_text().splitlines()
    assert rows[0] == "sampler,space,task_type,trials,mean regret"
    assert len(rows) == 1 + 3 * (3 + 4)  # 3 blocks: budgets 1, 5, 10 (Meta) and 1, 5, 10, 20 (Random)
    assert set(summary["mean_regret"]) == {"MetaLearnedSampler", "RandomSampler"}
    assert all(0.0 <= v <= 1.0 and math.isfinite(v) for c in summary["mean_regret"].values() for v in c.values())
    assert (tmp_path / "sampler_loo.png").stat().st_size > 5_000
    assert json.loads((tmp_path / "sampler_loo.json").read_text())["settings"]["tasks_per_block"] == 1


def test_the_real_objective_fits_each_trials_configuration_on_the_held_out_task_repeatably():
    from automl_meta import knowledge

    study, kb = study_module("sampler_loo"), knowledge.load()
    block = next(b for b in kb.blocks if b.space == "ridge" and b.task_type == "regression")
    t = study.held_out_tasks(block, 1)[0]
    real = study._real_tasks(kb.manifest["settings"]["max_rows"])[kb.tasks[t]["name"]]
    curve = study.regret(block, t, study.trial_losses(kb, block, t, "RandomSampler", 0, {}, real))
    assert np.all(np.diff(curve) <= 0) and 0.0 <= curve[-1] <= curve[0] <= 1.0
    # Fitted, not looked up: some best-so-far losses are not among those the task ran.
    losses = block.runs()[t][1]
    regrets = (losses - losses.min()) / (losses.max() - losses.min())
    assert not all(np.isclose(regrets, r).any() for r in curve)
    np.testing.assert_array_equal(
        curve, study.regret(block, t, study.trial_losses(kb, block, t, "RandomSampler", 0, {}, real))
    )


def test_kept_real_objective_cases_are_not_reused_for_another_variant_or_knowledge_file():
    study = study_module("sampler_loo")
    kb = type("KB", (), {"manifest": {"sha256": "a"}})()
    other_kb = type("KB", (), {"manifest": {"sha256": "b"}})()
    assert study._cases_key(kb, {"n_portfolio": 3}) == study._cases_key(kb, {"n_portfolio": 3})
    assert study._cases_key(kb, {"n_portfolio": 3}) != study._cases_key(kb, {"n_portfolio": 5})
    assert study._cases_key(kb, {}) != study._cases_key(other_kb, {})
    # Longer studies are kept apart; the default's folders keep their names.
    assert study._cases_key(kb, {}, 10) == study._cases_key(kb, {}) != study._cases_key(kb, {}, 50)


def test_meta_trials_sets_the_length_of_the_sampler_s_studies_only(tmp_path):
    study = study_module("sampler_loo")
    summary = study.main(
        ["--quick", "--out", str(tmp_path), "--samplers", "MetaLearnedSampler,RandomSampler", "--meta-trials", "20"]
    )
    assert set(summary["mean_regret"]["MetaLearnedSampler"]) == {"1", "5", "10", "20"}
    assert set(summary["mean_regret"]["RandomSampler"]) == {"1", "5", "10", "20"}
    assert json.loads((tmp_path / "sampler_loo.json").read_text())["settings"]["meta_trials"] == 20
    assert study.TRIALS["MetaLearnedSampler"] == 10  # the module's default is left as it was
    with pytest.raises(SystemExit):
        study.main(["--quick", "--out", str(tmp_path), "--meta-trials", "0"])


def test_a_knowledge_share_leaves_out_a_fixed_nested_subset_of_the_other_tasks_and_always_the_held_out_one():
    from automl_meta import knowledge

    study, kb = study_module("sampler_loo"), knowledge.load()
    names = {task["name"] for task in kb.tasks}
    t = 7
    held_out = {kb.tasks[t]["name"], kb.tasks[t]["fingerprint"]}
    assert set(study.left_out(kb, t, 1.0)) == held_out
    half, quarter = (set(study.left_out(kb, t, s)) & names for s in (0.5, 0.25))
    assert kb.tasks[t]["name"] in half and kb.tasks[t]["name"] in quarter
    assert half < quarter  # a smaller share reads a subset of what a larger one reads
    assert 0.35 * len(names) < len(names - half) < 0.65 * len(names)
    both = {kb.tasks[t]["name"], kb.tasks[t + 1]["name"]}
    assert half - both == (set(study.left_out(kb, t + 1, 0.5)) & names) - both  # the same subset for every task
    # Each left-out task goes with its fingerprint, which the sampler also matches.
    assert len(study.left_out(kb, t, 0.5)) == 2 * len(half)


def test_the_knowledge_share_keeps_its_own_cases_and_is_recorded(tmp_path):
    study = study_module("sampler_loo")
    kb = type("KB", (), {"manifest": {"sha256": "a"}})()
    assert study._cases_key(kb, {}, 10, 1.0) == study._cases_key(kb, {})  # the default's folders keep their names
    assert study._cases_key(kb, {}, 10, 0.5) != study._cases_key(kb, {})
    study.main(["--quick", "--out", str(tmp_path), "--samplers", "MetaLearnedSampler", "--knowledge-share", "0.5"])
    assert json.loads((tmp_path / "sampler_loo.json").read_text())["settings"]["knowledge_share"] == 0.5
    for bad in ("0", "1.5"):
        with pytest.raises(SystemExit):
            study.main(["--quick", "--out", str(tmp_path), "--knowledge-share", bad])


def test_rescoring_scores_each_budget_s_returned_configuration_on_other_folds(tmp_path):
    from automl_meta import knowledge

    study, kb = study_module("sampler_loo"), knowledge.load()
    rescore = study_module("_sampler_loo_rescore")
    block = next(b for b in kb.blocks if b.space == "ridge" and b.task_type == "regression")
    t = study.held_out_tasks(block, 1)[0]
    real = study._real_tasks(kb.manifest["settings"]["max_rows"])[kb.tasks[t]["name"]]
    configs: list = []
    losses = study.trial_losses(kb, block, t, "RandomSampler", 0, {}, real, 12, configs=configs)
    assert len(configs) == len(losses) == 12
    path = tmp_path / "case.json"
    searched = study.regret(block, t, losses).tolist()
    path.write_text(json.dumps({"regret": searched, "losses": losses, "configs": configs}))
    rescore.rescore_case(path, block, t, real)
    case = json.loads(path.read_text())
    assert set(case["rescored"]) == {"5", "10"}  # the budgets up to the study's length
    assert all(math.isfinite(r) and r <= 1.0 for r in case["rescored"].values())
    # Other folds: the returned configuration's re-scored regret is not its search regret (ridge is deterministic
    # given the folds), and the same on every re-scoring.
    assert case["rescored"]["10"] != pytest.approx(case["regret"][9])
    returned = configs[int(np.argmin(losses[:10]))]  # the first of the least loss in 10 trials
    again = rescore.rescored_regret(block, t, returned, real)
    assert again == case["rescored"]["10"]
    (tmp_path / "old.json").write_text(json.dumps({"regret": [], "losses": losses}))  # kept without configurations
    with pytest.raises(SystemExit, match="--fresh"):
        rescore.rescore_case(tmp_path / "old.json", block, t, real)
    with pytest.raises(SystemExit):
        study.main(["--quick", "--out", str(tmp_path), "--rescore"])  # the lookup objective has nothing to re-score
