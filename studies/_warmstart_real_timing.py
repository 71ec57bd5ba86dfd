"""The cost of ``warmstart_real.py``: CPU seconds per case, the samplers' own time and the knowledge load time.

Cases record their CPU, objective, first-trial and sampler seconds; from them the report prints what a case
costs per space and sampler, what the samplers add per trial, and (except in a quick run) what a full run would
take with ``--jobs 2``.
"""

from __future__ import annotations

import sys
from typing import Any

import _warmstart_real_cases as cases
import numpy as np
from _report import print_table


def timings(curves: list[dict[str, Any]], spaces: list[str], seeds: int, quick: bool) -> dict[str, Any]:
    """Print and return the CPU seconds of a case per space and sampler, the samplers' own times, and the full
    run's cost (2 jobs) estimated from the mean (task, space) of each space (not for quick runs' budgets)."""
    from automl_meta.knowledge._objective import ESTIMATORS

    rows, estimate = [], 0.0
    for space in spaces:
        mine = [c for c in curves if c["space"] == space]
        per = [float(np.mean([c["cpu_seconds"] for c in mine if c["sampler"] == n])) for n in cases.SAMPLERS]
        fits = sum(len(c["values"]) - c["cache_hits"] for c in mine)
        fit_seconds = sum(c["objective_seconds"] for c in mine) / max(fits, 1)
        n_tasks = sum(space in ESTIMATORS[t.task_type] for t in cases.evaluation_tasks().values())
        estimate += sum(per) * n_tasks * seeds
        rows.append([space, len({c["task"] for c in mine}), *per, sum(per), fit_seconds])

    def mean(key: str, n: str) -> float:
        return float(
            np.mean(
                [
                    c[key] / (1 if key == "first_trial_seconds" else len(c["values"]))
                    for c in curves
                    if c["sampler"] == n
                ]
            )
        )

    summary: dict[str, Any] = {
        "case_cpu_seconds": {r[0]: dict(zip(cases.SAMPLERS, r[2:6])) for r in rows},
        "seconds_per_fit": {r[0]: r[7] for r in rows},
        "first_trial_seconds": {n: mean("first_trial_seconds", n) for n in cases.SAMPLERS},
        "sampler_seconds_per_trial": {n: mean("sampler_seconds", n) for n in cases.SAMPLERS},
    }
    print_table(["space (CPU s)", "tasks", *cases.SAMPLERS, "per (task, seed)", "per fit"], rows)
    print_table(
        ["sampler", "first trial s", "sampler s per trial"],
        [[n, summary["first_trial_seconds"][n], summary["sampler_seconds_per_trial"][n]] for n in cases.SAMPLERS],
    )
    if not quick:
        summary["full_run_estimate_hours_2_jobs"] = estimate / 3600 / 2
        print(f"A full run of {seeds} seed(s) takes about {estimate / 3600 / 2:.1f} h with --jobs 2 (estimated)")
    return summary


def knowledge_load_seconds(repeats: int = 3) -> float:
    """Median time of ``automl_meta.knowledge.load()`` in a fresh interpreter (its imports done first)."""
    import subprocess

    code = (
        "import time; from automl_meta import knowledge; "
        "t = time.perf_counter(); knowledge.load(); print(time.perf_counter() - t)"
    )
    times = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(repeats)
    ]
    return float(np.median(times))
