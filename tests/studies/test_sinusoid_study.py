"""The quick sinusoid study runs end to end and writes its table, CSV, JSON and plot.

The test runs one learner (``--learners metasgd``, which writes ``sinusoid-metasgd.*``): each learner's
quick meta-training is a minute or more of CPU (iMAML's about 3), and tests/training/test_trainer.py and
tests/learners/test_imaml.py cover every learner's learning on this family.
"""

from __future__ import annotations

import json


def test_quick_study_writes_results(run_quick_study):
    tmp_path = run_quick_study("sinusoid", "--learners", "metasgd")
    assert "MSE 10 steps" in run_quick_study.stdout
    result = json.loads((tmp_path / "sinusoid-metasgd.json").read_text())
    assert result["quick"] is True and result["eval_tasks"] == 100
    assert set(result["mse"]) == {"metasgd"}
    mse = result["mse"]["metasgd"]
    assert set(mse) == {"5", "10", "20"}
    # An unadapted guess of 0 scores E[A^2]/2 ~ 4.2 on this family: even a short run must beat it well.
    assert all(0 < mse[k] < 2.5 for k in mse)
    assert mse["20"] < mse["10"] < mse["5"]  # more shots, better fits
    assert all(result["mse_1_step"]["metasgd"][k] > 0 for k in mse)
    assert (tmp_path / "sinusoid-metasgd.csv").read_text().count("\n") == 4
    assert (tmp_path / "sinusoid-metasgd.png").stat().st_size > 10_000
    assert not (tmp_path / "sinusoid.json").exists()  # a subset leaves the full table as it is
