"""The quick sinusoid study runs end to end and writes its table, CSV, JSON and plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

STUDY = Path(__file__).resolve().parents[2] / "studies" / "sinusoid.py"


def test_quick_study_writes_results(tmp_path):
    run = subprocess.run([sys.executable, str(STUDY), "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "MSE 10 steps" in run.stdout
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
