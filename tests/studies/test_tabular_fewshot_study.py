"""The few-shot tabular study's quick mode writes its tables, headline figures and plots."""

from __future__ import annotations

import json


def test_quick_run_writes_ranks_ratios_family_results_and_plots(run_quick_study):
    tmp_path = run_quick_study("tabular_fewshot")
    result = json.loads((tmp_path / "tabular_fewshot.json").read_text())
    assert result["quick"] is True and result["cases"] == 8
    ranks = result["mean_rank"]
    assert {"MetaLearnedClassifier", "LogisticRegression", "RandomForest", "TunedAdam"} <= set(ranks)
    assert all(1 <= r <= 6 for r in ranks.values())
    assert result["logloss_ratio_vs_tuned_adam"] > 0 and result["time_ratio_vs_tuned_adam"] > 0
    lines = (tmp_path / "tabular_fewshot.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 8 * 6  # a row per case and method
    assert (tmp_path / "tabular_fewshot.png").stat().st_size > 10_000
    # Family mode: K = 5 and 10 shots on 3 new stores, four methods each.
    assert set(result["family_error_ratio_vs_scratch"]) == {"5", "10"}
    assert all(r > 0 for r in result["family_error_ratio_vs_scratch"].values())
    family = (tmp_path / "tabular_fewshot_family.csv").read_text().strip().splitlines()
    assert len(family) == 1 + 2 * 3 * 4
    assert (tmp_path / "tabular_fewshot_family.png").stat().st_size > 10_000
