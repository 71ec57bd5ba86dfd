"""The quick sinusoid study runs end to end and writes its table, CSV, JSON and plot."""

from __future__ import annotations

import json


def test_quick_study_writes_results(run_quick_study):
    tmp_path = run_quick_study("sinusoid")
    assert "MSE 10 steps" in run_quick_study.stdout
    result = json.loads((tmp_path / "sinusoid.json").read_text())
    assert result["quick"] is True and result["eval_tasks"] == 100
    for name in ("maml", "metasgd"):
        assert set(result["mse"][name]) == {"5", "10", "20"}
        for k in ("5", "10", "20"):
            # An unadapted guess of 0 scores E[A^2]/2 ~ 4.2 on this family: even a short run must beat it well.
            assert 0 < result["mse"][name][k] < 2.5
        # More shots, better fits.
        assert result["mse"][name]["20"] < result["mse"][name]["5"]
    assert (tmp_path / "sinusoid.csv").read_text().count("\n") == 7
    assert (tmp_path / "sinusoid.png").stat().st_size > 10_000
