"""The quick engine-speed study runs and reports ratios and the float64 meta-gradient agreement."""

from __future__ import annotations

import json
import math


def test_quick_study_writes_results(run_quick_study):
    tmp_path = run_quick_study("engine_speed")
    result = json.loads((tmp_path / "engine_speed.json").read_text())
    assert set(result["ratio_vs_higher"]) == {"1", "5"}
    assert all(math.isfinite(r) and r > 0 for r in result["ratio_vs_higher"].values())
    assert result["max_abs_grad_diff_float64"] < 1e-10
    assert result["quick"] is True
    assert (tmp_path / "engine_speed.png").stat().st_size > 5_000
