"""The quick sampler-overhead study times every trial of the three samplers and states the acceptance."""

from __future__ import annotations

import csv
import json


def test_quick_run_times_every_trial_and_states_the_acceptance(run_quick_study):
    tmp_path = run_quick_study("sampler_overhead")
    result = json.loads((tmp_path / "sampler_overhead.json").read_text())
    assert result["quick"] is True and result["trials"] == 150
    samplers = result["samplers"]
    assert set(samplers) == {"MetaLearnedSampler", "MetaLearnedSampler(n_transfer=all)", "TPESampler"}
    assert samplers["TPESampler"]["ratio_to_tpe"] == 1.0
    assert all(0 < s["median_ms"] <= s["p95_ms"] <= s["max_ms"] for s in samplers.values())
    phases = result["defaults_by_phase"]
    assert [phases[p]["trials"] for p in ("first trial", "portfolio", "transfer", "after hand-over")] == [1, 4, 100, 45]
    rows = list(csv.DictReader((tmp_path / "sampler_overhead.csv").open()))
    assert len(rows) == 3 * 150 and all(float(r["overhead_ms"]) > 0 for r in rows)
    assert isinstance(result["acceptance"]["holds"], bool)
    assert ("HOLDS" in run_quick_study.stdout) != ("FAILS" in run_quick_study.stdout)
    assert (tmp_path / "sampler_overhead.png").stat().st_size > 5_000
