"""The quick few-shot tabular study runs end to end and reports its headline figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

STUDY = Path(__file__).resolve().parents[2] / "studies" / "tabular_fewshot.py"


def test_quick_study_writes_results(tmp_path):
    run = subprocess.run([sys.executable, str(STUDY), "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "tabular_fewshot.json").read_text())
    assert result["quick"] is True and result["cases"] == 8
    ranks = result["mean_rank"]
    assert {"MetaLearnedClassifier", "LogisticRegression", "RandomForest", "TunedAdam"} <= set(ranks)
    assert all(1 <= r <= 6 for r in ranks.values())
    assert result["logloss_ratio_vs_tuned_adam"] > 0 and result["time_ratio_vs_tuned_adam"] > 0
    lines = (tmp_path / "tabular_fewshot.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 8 * 6  # a row per case and method
    assert (tmp_path / "tabular_fewshot.png").stat().st_size > 10_000
