"""The MetaSearchCV study's report: per-task means over the outer folds and paired differences over tasks."""

from __future__ import annotations

import json

import numpy as np

from .conftest import study_module


def test_the_report_pairs_methods_per_task_and_leaves_out_unfinished_tasks(tmp_path, capsys):
    study = study_module("metasearchcv_real")
    rng = np.random.default_rng(0)
    cases = []
    for t, lift in [("a", 0.05), ("b", 0.01), ("c", -0.02)]:
        for fold in range(3):
            base = rng.uniform(0.6, 0.8)
            scores = {"defaults": base, "MetaSearchCV": base + lift, "TPE": base}
            cases.append({"task": t, "fold": fold, **scores, **{f"{m}_seconds": 1.0 for m in scores}})
    cases.append({**cases[0], "task": "unfinished"})  # one fold of three: not reported
    summary = study.report(tmp_path, cases, ["a", "b", "c", "unfinished"], folds=3, trials=10)
    diff = summary["MetaSearchCV_minus_defaults"]
    assert summary["tasks"] == 3 and summary["tasks_expected"] == 4
    assert np.isclose(diff["mean"], (0.05 + 0.01 - 0.02) / 3)
    assert (diff["wins"], diff["losses"]) == (2, 1)
    assert diff["ci95"][0] <= diff["mean"] <= diff["ci95"][1]
    assert -0.02 - 1e-9 <= diff["ci95"][0] and diff["ci95"][1] <= 0.05 + 1e-9  # within the per-task differences
    assert summary["beats_defaults_on_average"] is True
    assert "beats the defaults on average over 3 tasks: YES" in capsys.readouterr().out
    rows = (tmp_path / "metasearchcv_real.csv").read_text().splitlines()
    assert rows[0] == "task,defaults,MetaSearchCV,TPE" and len(rows) == 4
    assert (tmp_path / "metasearchcv_real.png").stat().st_size > 5_000
    json.dumps(summary)  # the summary is written as JSON
