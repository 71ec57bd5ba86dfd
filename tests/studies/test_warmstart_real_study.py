"""The held-out warm-start study's arithmetic: regret curves, paired intervals, verdicts and kept cases."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

STUDIES = Path(__file__).resolve().parents[2] / "studies"


@pytest.fixture
def study(monkeypatch):
    monkeypatch.syspath_prepend(str(STUDIES))
    import warmstart_real

    return warmstart_real


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
