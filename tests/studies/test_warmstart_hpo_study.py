"""The quick warm-start study runs leave-one-task-out on a small store and writes the headline JSON."""

from __future__ import annotations

import gzip
import json
import shutil


def test_quick_study_writes_results(run_quick_study):
    tmp_path = run_quick_study("warmstart_hpo")
    result = json.loads((tmp_path / "warmstart_hpo.json").read_text())
    assert result["quick"] is True and result["held_out_tasks"] == 2 and result["seeds"] == 2
    assert set(result["regret"]) == {"MetaLearnedSampler", "TPESampler", "RandomSampler", "WS-CMA-ES"}
    for curve in result["regret"].values():
        assert set(curve) == {"1", "5", "10"}
        assert all(0 <= v <= 1 for v in curve.values())
        assert curve["1"] >= curve["5"] >= curve["10"]  # best-so-far regret never grows
    assert result["cases"] == 2 * 2 * 4 * 2  # tasks x spaces x samplers x seeds
    match = result["baseline_trials_to_match"]
    assert set(match) == {"TPESampler", "RandomSampler", "WS-CMA-ES"}
    for name, by_budget in match.items():
        for budget, trials in by_budget.items():
            # None: the baseline never gets there; else the first trial count where its mean regret does.
            assert trials is None or (
                1 <= trials <= 10
                and (trials > 1 or result["regret"][name]["1"] <= result["regret"]["MetaLearnedSampler"][budget])
            )
    assert (tmp_path / "warmstart_hpo.png").stat().st_size > 10_000
    lines = (tmp_path / "warmstart_hpo.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 4 * 3

    # A new checkout keeps only the results: the next run starts from the kept cases and runs again only
    # those of another version of their sampler.
    snapshot = tmp_path / "warmstart_hpo_cases.jsonl.gz"
    with gzip.open(snapshot, "rt") as f:
        kept = [json.loads(line) for line in f]
    assert len(kept) == 32
    for c in kept:
        if c["sampler"] == "MetaLearnedSampler":
            c["version"] = "an older sampler"
    with gzip.open(snapshot, "wt") as f:
        f.writelines(json.dumps(c) + "\n" for c in kept)
    shutil.rmtree(tmp_path / "runs" / "warmstart_hpo")
    run_quick_study("warmstart_hpo")
    assert "8 cases ran another version of MetaLearnedSampler: they run again" in run_quick_study.stdout
    assert "24 cases done, 8 to run" in run_quick_study.stdout
    with gzip.open(snapshot, "rt") as f:
        again = {(c["task"], c["space"], c["sampler"], c["seed"]): c for c in map(json.loads, f)}
    assert len(again) == 32 and "an older sampler" not in {c["version"] for c in again.values()}
    for c in kept:  # the sampler is seeded: the cases run again reproduce the first run's values
        assert again[c["task"], c["space"], c["sampler"], c["seed"]]["values"] == c["values"]
