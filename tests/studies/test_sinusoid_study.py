"""The quick sinusoid study runs end to end and writes its table, CSV, JSON and plot.

The test runs two of the three learners (``--learners``, which writes ``sinusoid-<learners>.*``): iMAML's
quick meta-training alone costs about 3 CPU minutes, and tests/learners/test_imaml.py covers its learning.
"""

from __future__ import annotations

import json


def test_quick_study_writes_results(run_quick_study):
    tmp_path = run_quick_study("sinusoid", "--learners", "maml,metasgd")
    assert "MSE 10 steps" in run_quick_study.stdout
    result = json.loads((tmp_path / "sinusoid-maml-metasgd.json").read_text())
    assert result["quick"] is True and result["eval_tasks"] == 100
    assert set(result["mse"]) == {"maml", "metasgd"}
    for name in ("maml", "metasgd"):
        assert set(result["mse"][name]) == {"5", "10", "20"}
        # An unadapted guess of 0 scores E[A^2]/2 ~ 4.2 on this family: even a short run must beat it well.
        for k in ("5", "10", "20"):
            assert 0 < result["mse"][name][k] < 2.5
        # More shots, better fits.
        assert result["mse"][name]["20"] < result["mse"][name]["5"]
    # Meta-SGD's learned per-parameter rates fit better than MAML's one rate (the paper's ordering).
    assert all(result["mse"]["metasgd"][k] < result["mse"]["maml"][k] for k in ("5", "10", "20"))
    assert (tmp_path / "sinusoid-maml-metasgd.csv").read_text().count("\n") == 7
    assert (tmp_path / "sinusoid-maml-metasgd.png").stat().st_size > 10_000
    assert not (tmp_path / "sinusoid.json").exists()  # a subset leaves the full table as it is
