"""The quick engine-speed study runs and reports ratios and the float64 meta-gradient agreement."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

STUDY = Path(__file__).resolve().parents[2] / "studies" / "engine_speed.py"


def test_quick_study_writes_results(tmp_path):
    run = subprocess.run([sys.executable, str(STUDY), "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "engine_speed.json").read_text())
    assert set(result["ratio_vs_higher"]) == {"1", "5"}
    assert all(math.isfinite(r) and r > 0 for r in result["ratio_vs_higher"].values())
    assert result["max_abs_grad_diff_float64"] < 1e-10
    assert result["quick"] is True
    assert (tmp_path / "engine_speed.png").stat().st_size > 5_000
