"""The real-task tabular study: its quick mode, its subsamples and its resumable case log."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np

from .conftest import study_module

METHODS = ("MetaLearnedClassifier", "LogisticRegression", "RandomForest", "HistGradientBoosting", "MLPClassifier")


def test_quick_run_reports_every_method_at_16_and_64_rows_and_resumes(run_quick_study):
    out = run_quick_study("tabular_real")
    result = json.loads((out / "tabular_real.json").read_text())
    assert result["quick"] is True and result["cases"] == result["cases_planned"] == 4
    assert result["n_train_without_tasks"] == [256, 1024, 4096, 10000]
    assert set(result["levels"]) == set(result["acceptance"]) == {"16", "64"}
    for level in result["levels"].values():
        assert level["tasks"] == 2 and level["cases"] == 2 and set(level["methods"]) == set(METHODS)
        stats = level["methods"].values()
        assert math.isclose(sum(s["log_loss_rank"] for s in stats), 15)  # ranks 1..5 on every task
        for s in stats:
            assert 0 < s["log_loss"] < 5 and 0 < s["accuracy"] <= 1 and s["seconds_per_case"] > 0
            for key in ("log_loss", "accuracy", "log_loss_rank", "time_ratio_vs_rf"):
                low, high = s[f"{key}_ci95"]
                assert low - 1e-9 <= s[key] <= high + 1e-9
        assert level["methods"]["RandomForest"]["time_ratio_vs_rf"] == 1
        assert isinstance(level["rank_best"], bool) and isinstance(level["time_ratio_le_1"], bool)
    rows = (out / "tabular_real.csv").read_text().splitlines()
    assert rows[0].startswith("n_train,method,tasks,cases,log_loss,log_loss_ci_low") and len(rows) == 1 + 2 * 5
    assert (out / "tabular_real.png").stat().st_size > 10_000
    with gzip.open(out / "tabular_real_cases.jsonl.gz", "rt") as f:
        cases = [json.loads(line) for line in f]
    assert len(cases) == 4 and all(c["absent_classes"] == 0 and c["version"]["artifact"] for c in cases)
    run_quick_study("tabular_real")  # a second run finds every case in the log
    assert "4 cases planned, 0 to run" in run_quick_study.stdout


def test_subsamples_are_stratified_keep_every_class_and_are_seeded():
    study = study_module("_tabular_real_cases")
    y = np.repeat([0, 1, 2], [3, 50, 200])
    train, test = study.split_rows(y, 16, seed=0, name="t")
    assert len(train) == 16 and set(y[train]) == {0, 1, 2}
    assert np.bincount(y[train]).tolist() == [1, 3, 12]  # one row each, the rest in proportion
    assert not set(train) & set(test) and len(train) + len(test) == len(y)
    again, _ = study.split_rows(y, 16, seed=0, name="t")
    other, _ = study.split_rows(y, 16, seed=1, name="t")
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    _, capped = study.split_rows(np.repeat([0, 1], 3000), 64, seed=0, name="t")
    assert len(capped) == study.MAX_TEST


def test_a_log_cut_while_writing_keeps_its_whole_cases_and_drops_other_versions(tmp_path):
    study = study_module("_tabular_real_cases")
    log = tmp_path / "cases.jsonl.gz"
    cases = [{"task": "a", "seed": s, "version": {"v": str(s % 2)}, "fingerprint": "f"} for s in range(3)]
    with gzip.open(log, "wt") as f:
        f.writelines(json.dumps(c) + "\n" for c in cases)
    with gzip.open(log, "at") as f:  # a member cut short, as by a kill in mid-write
        f.write(json.dumps(cases[0])[:20])
        f.flush()
    log.write_bytes(log.read_bytes()[:-8])  # without the member's trailer
    kept = study.load_cases(log, {"v": "0"}, {"a": "f"})
    assert [c["seed"] for c in kept] == [0, 2]
    with gzip.open(log, "at") as f:  # the rewritten log takes appends again
        f.write(json.dumps(cases[1]) + "\n")
    assert [c["seed"] for c in study.read_log(log)[0]] == [0, 2, 1] and study.read_log(log)[1]
