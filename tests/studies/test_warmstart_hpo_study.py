"""The quick warm-start study runs leave-one-task-out on a small store and writes the headline JSON."""

from __future__ import annotations

import json


def test_quick_study_writes_results(run_quick_study):
    tmp_path = run_quick_study("warmstart_hpo")
    result = json.loads((tmp_path / "warmstart_hpo.json").read_text())
    assert result["quick"] is True and result["held_out_tasks"] == 2 and result["seeds"] == 2
    assert set(result["regret"]) == {"MetaLearnedSampler", "TPESampler", "RandomSampler", "WS-CMA-ES"}
    for curve in result["regret"].values():
        assert set(curve) == {"1", "5", "10"}
        assert all(0 <= v <= 1 for v in curve.values())
        assert curve["1"] >= curve["5"] >= curve["10"]  # best-so-far regret never grows
    assert result["cases"] == 2 * 2 * 4 * 2  # tasks x spaces x samplers x seeds
    match = result["baseline_trials_to_match"]
    assert set(match) == {"TPESampler", "RandomSampler", "WS-CMA-ES"}
    for name, by_budget in match.items():
        for budget, trials in by_budget.items():
            # None: the baseline never gets there; else the first trial count where its mean regret does.
            assert trials is None or (1 <= trials <= 10 and (trials > 1 or
                                      result["regret"][name]["1"] <= result["regret"]["MetaLearnedSampler"][budget]))
    assert (tmp_path / "warmstart_hpo.png").stat().st_size > 10_000
    lines = (tmp_path / "warmstart_hpo.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 4 * 3
