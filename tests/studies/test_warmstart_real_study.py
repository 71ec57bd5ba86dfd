"""The held-out warm-start study's arithmetic: regret curves, paired intervals, verdicts and kept cases."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from .conftest import study_module


@pytest.fixture
def study():
    """The study's module; its helpers are ``study.cases`` and ``study.rescore``."""
    return study_module("warmstart_real")


def _case(task: str, space: str, sampler: str, values: list, seed: int = 0) -> dict:
    return {"task": task, "space": space, "sampler": sampler, "seed": seed, "values": values}


def test_regret_runs_from_the_worst_to_the_best_loss_any_case_saw_and_a_failed_trial_counts_as_worst(study):
    cases = [
        _case("t", "ridge", "A", [None, 0.5, 0.3]),  # a failed first trial
        _case("t", "ridge", "B", [0.7, 0.1, 0.2]),
    ]
    a, b = study.regret_curves(cases)
    # best 0.1, worst finite 0.7: regret = (best so far - 0.1) / 0.6.
    np.testing.assert_allclose(a["regret"], [1.0, 0.4 / 0.6, 0.2 / 0.6])
    np.testing.assert_allclose(b["regret"], [1.0, 0.0, 0.0])
    flat = study.regret_curves([_case("u", "svc", "A", [0.2, 0.2])])[0]  # no spread: no regret
    np.testing.assert_allclose(flat["regret"], [0.0, 0.0])


def test_paired_differences_average_the_spaces_per_task_and_give_plain_verdicts(study):
    curves = []
    rng = np.random.default_rng(0)
    for t in range(12):
        for space, shift in (("ridge", 0.1 + 0.01 * t), ("svc", 0.3)):
            base = rng.uniform(0.2, 0.6)
            for name, regret in (("MetaLearnedSampler", base - shift), ("TPESampler", base), ("WS-CMA-ES", base + 0.1)):
                curves.append({**_case(f"t{t}", space, name, []), "regret": np.full(50, regret)})
    meta, tpe = ("MetaLearnedSampler", 10), ("TPESampler", 50)
    overall = study.paired(curves, meta, tpe, "all")
    expected = np.mean([-(0.1 + 0.01 * t + 0.3) / 2 for t in range(12)])  # per task: the mean over its spaces
    assert overall["tasks"] == 12 and overall["mean_difference"] == pytest.approx(expected)
    low, high = overall["ci95"]
    assert low < expected < high and high - low < 0.05
    assert study.paired(curves, meta, tpe, "svc")["mean_difference"] == pytest.approx(-0.3)
    verdicts = {(c["criterion"], c["space"]): c for c in study.comparisons(curves, ["svc"], study.cases.TRIALS)}
    assert set(verdicts) == {
        ("MetaLearnedSampler@10 <= TPESampler@50", "all"),
        ("MetaLearnedSampler@10 <= TPESampler@50", "svc"),
        ("MetaLearnedSampler@5 < WS-CMA-ES@10", "all"),
        ("MetaLearnedSampler@5 < WS-CMA-ES@10", "svc"),
    }
    assert all(v["holds"] and v["confident"] for v in verdicts.values())
    worse = [{**c, "regret": c["regret"] + 0.5} if c["sampler"] == "MetaLearnedSampler" else c for c in curves]
    failed = study.comparisons(worse, [], study.cases.TRIALS)[0]
    assert not failed["holds"] and failed["verdict"].startswith("fails")
    longer = study.comparisons(curves, [], study.cases.TRIALS, study.LONGER)
    assert [c["criterion"] for c in longer] == [
        "MetaLearnedSampler@20 <= TPESampler@20",
        "MetaLearnedSampler@50 <= TPESampler@50",
    ]
    # Only Meta@50 is re-scored among the longer budgets, so only its comparison is made again on re-scores.
    assert study.rescore.rescored_criteria(study.LONGER) == (study.LONGER[1],)


def test_only_pairs_that_every_sampler_finished_enter_the_report(study):
    full = [_case("t", "ridge", n, [0.1]) for n in study.cases.SAMPLERS]
    partial = [_case("u", "ridge", n, [0.1]) for n in study.cases.SAMPLERS[:2]]
    assert study.complete(full + partial, seeds=1) == full


def test_svm_cases_are_keyed_by_the_iteration_cap_and_stale_cases_run_again(study, tmp_path, monkeypatch):
    cases = study.cases
    monkeypatch.setattr(cases, "sampler_version", lambda name: f"v-{name}")
    assert cases.case_version("TPESampler", "ridge") == "v-TPESampler"
    assert cases.case_version("TPESampler", "svr").startswith("v-TPESampler; svm max_iter ")
    kept = {**_case("t", "ridge", "TPESampler", [0.1]), "version": "v-TPESampler"}
    old_svm = {**_case("t", "svr", "TPESampler", [0.1]), "version": "v-TPESampler"}  # before the cap
    snapshot = tmp_path / "cases.jsonl.gz"
    with gzip.open(snapshot, "wt") as f:
        f.writelines(json.dumps(c) + "\n" for c in (kept, old_svm))
    done = cases.load_cases(tmp_path / "log.jsonl", snapshot, fresh=False)
    assert done == [kept]
    assert [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()] == [kept]


def test_the_chosen_configuration_is_the_best_so_far_at_the_budget(study):
    rescore = study.rescore
    case = {**_case("t", "ridge", "TPESampler", [0.5, None, 0.2, 0.1]), "configs": [{"a": i} for i in range(4)]}
    assert rescore.chosen(case, 1) == {"a": 0} and rescore.chosen(case, 3) == {"a": 2}
    assert rescore.chosen(case, 4) == {"a": 3}
    failed = {**_case("t", "ridge", "TPESampler", [None, None]), "configs": [{"a": 0}, {"a": 1}]}
    assert rescore.chosen(failed, 2) is None


def test_re_scored_regret_is_on_the_search_s_scale_and_waits_for_every_chosen_configuration(study, monkeypatch):
    rescore = study.rescore
    monkeypatch.setattr(rescore, "rescore_version", lambda space: "v")
    values = [0.6, 0.4] + [0.3] * 8
    meta = {**_case("t", "ridge", "MetaLearnedSampler", values), "configs": [{"a": i} for i in range(10)]}
    tpe_values = [0.5] * 9 + [0.2] + [0.25] * 40
    tpe = {**_case("t", "ridge", "TPESampler", tpe_values), "configs": [{"a": 10 + i} for i in range(50)]}
    curves = study.regret_curves([meta, tpe])  # search scale: best 0.2, worst 0.6
    assert all(c["scale"] == pytest.approx((0.2, 0.4)) for c in curves)
    # Meta@5 and Meta@10 chose {"a": 2}; TPE@10 and TPE@50 chose {"a": 19}: two configurations to re-score.
    units = rescore.pending_units([meta, tpe], [])
    assert [(t, s, sorted(c["a"] for c in cs)) for t, s, cs in units] == [("t", "ridge", [2, 19])]
    done = [{"task": "t", "space": "ridge", "config": rescore.config_key({"a": 2}), "loss": 0.28, "version": "v"}]
    assert rescore.pending_units([meta, tpe], done)[0][2] == [{"a": 19}]
    assert rescore.rescored_curves(curves, done) == []  # TPE's choice is not re-scored yet
    # TPE's lucky 0.2 scores 0.32 on other folds; Meta's 0.3 scores 0.28.
    done.append({"task": "t", "space": "ridge", "config": rescore.config_key({"a": 19}), "loss": 0.32, "version": "v"})
    again = {c["sampler"]: c["regret"] for c in rescore.rescored_curves(curves, done)}
    assert again["MetaLearnedSampler"][9] == pytest.approx(0.2) and again["TPESampler"][49] == pytest.approx(0.3)
    assert np.isnan(again["MetaLearnedSampler"][0]) and again["MetaLearnedSampler"][4] == pytest.approx(0.2)
    stale = [{**r, "version": "old"} for r in done]
    assert rescore.rescored_curves(curves, stale) == []


def test_cases_keep_the_configurations_and_a_configuration_s_fit_seed_is_fixed(study):
    cases = study.cases
    assert cases.config_seed({"a": 1, "b": "x"}) == cases.config_seed({"b": "x", "a": 1})
    assert cases.config_seed({"a": 1}) != cases.config_seed({"a": 2})
    assert cases.config_seed({"a": 1}, 1) != cases.config_seed({"a": 1})
    task = min(cases.evaluation_tasks().values(), key=lambda t: (t.task_type != "classification", t.n_rows))
    case = cases.run_case(task.name, "random_forest", "RandomSampler", 0, 3)
    assert len(case["configs"]) == 3 and all(set(c) >= {"max_features", "min_samples_leaf"} for c in case["configs"])
    cases._LOSSES.clear()  # fitted again, not looked up: the same losses
    assert cases.run_case(task.name, "random_forest", "RandomSampler", 0, 3)["values"] == case["values"]
