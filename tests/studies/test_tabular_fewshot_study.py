"""The quick few-shot tabular study runs end to end and reports its headline figures."""

from __future__ import annotations

import json


def test_quick_study_writes_results(run_quick_study):
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
