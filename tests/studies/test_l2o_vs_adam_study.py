"""The quick learned-optimizer study runs end to end and reports its headline figures."""

from __future__ import annotations

import csv
import json
import math

import automl_meta as am

from .conftest import assert_reused_all_but, marked_copy, quick_study, shared_quick_run

quick_run = shared_quick_run("l2o_vs_adam")


def test_quick_study_writes_results(quick_run):
    tmp_path, stdout = quick_run
    assert "beats Adam 1e-3" in stdout
    result = json.loads((tmp_path / "l2o_vs_adam.json").read_text())
    assert set(result) == {
        "median_steps_ratio_vs_tuned_adam",
        "frac_beats_adam_default",
        "divergences",
        "held_out_tasks",
        "quick",
    }
    assert result["quick"] is True and result["held_out_tasks"] == 2
    assert 0.0 <= result["frac_beats_adam_default"] <= 1.0 and result["divergences"] in (0, 1, 2)
    assert result["median_steps_ratio_vs_tuned_adam"] > 0
    details = json.loads((tmp_path / "l2o_vs_adam_details.json").read_text())
    methods = details["methods"]
    assert {"Adam (tuned)", "SGDm (tuned)", "Adam 1e-3", details["default"]} <= set(methods)
    assert methods["Adam (tuned)"]["median_steps_ratio_vs_tuned_adam"] == 1.0  # its own reference
    assert methods[details["default"]]["divergences"] == result["divergences"]
    overhead = details["step_overhead_1M"]
    assert "Adam" in overhead and details["default"] in overhead
    assert all(math.isfinite(v["ms"]) and v["ms"] > 0 for v in overhead.values())
    with open(tmp_path / "l2o_vs_adam.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(methods)
    assert (tmp_path / "l2o_vs_adam.png").stat().st_size > 10_000


def test_another_controller_reuses_the_other_methods_runs_kept_by_an_earlier_run(quick_run, tmp_path):
    kept = marked_copy(quick_run[0] / "runs" / "l2o_vs_adam", tmp_path / "kept")
    rule = am.MetaArtifact(am.learners.HyperController(interval=5, seed=1)).save(tmp_path / "candidate.ameta")
    quick_study(tmp_path / "again", "l2o_vs_adam", "--rule", str(rule), "--baselines", str(kept))
    cache = tmp_path / "again" / "runs" / "l2o_vs_adam"
    assert len(list(cache.glob("*.json"))) == len(list(kept.glob("*.json")))
    assert_reused_all_but(cache, "L2O controller")  # the controller is always trained
