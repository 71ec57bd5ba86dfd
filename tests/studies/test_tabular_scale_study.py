"""The quick tabular-scale study runs both methods on every task and reports times, memory and scores."""

from __future__ import annotations

import json
import math


def test_quick_study_writes_results(run_quick_study):
    tmp_path = run_quick_study("tabular_scale")
    result = json.loads((tmp_path / "tabular_scale.json").read_text())
    cases = result["cases"]
    tasks, methods = ("2 classes", "20 classes", "regression"), ("MetaLearned", "RandomForest")
    assert {(c["task"], c["method"]) for c in cases} == {(t, m) for t in tasks for m in methods}
    for c in cases:
        assert c["fit_s"] > 0 and c["predict_rows_per_s"] > 0 and c["peak_mb"] >= c["before_fit_mb"] > 0
        assert math.isfinite(c["score"]) and c["warnings"] == 0
    # Above the threshold the rules the tasks follow are learned (chance: 0.5, 0.05; R^2 0).
    score = {c["task"]: c["score"] for c in cases if c["method"] == "MetaLearned"}
    assert score["2 classes"] > 0.85 and score["20 classes"] > 0.25 and score["regression"] > 0.6
    rows = (tmp_path / "tabular_scale.csv").read_text().splitlines()
    assert rows[0].startswith("task,rows,fit s,peak MB,predict rows/s,score") and len(rows) == 4
    assert result["settings"]["quick"] is True and result["largest"]["warnings"] == 0
    assert (tmp_path / "tabular_scale.png").stat().st_size > 5_000
