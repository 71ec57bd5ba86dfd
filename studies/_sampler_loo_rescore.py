"""Re-scoring for ``sampler_loo.py --objective real --rescore``: what a study's returned configuration is worth.

The real objective is noisy (3 shuffled folds on at most the knowledge build's row cap), and a study's best
loss after t trials is the least of t noisy draws: a change that steps around lucky trials gains regret
there without finding better configurations. ``--rescore`` scores the configuration a case's study would
return after each of ``BUDGETS`` trials (its best so far) again, on other shuffles of the folds and other
estimator seeds, as ``warmstart_real.py`` does on the evaluation tasks (with its ``chosen`` and
``RESCORE_SEEDS``, averaged). The re-scored regret is (that loss - the task's best stored loss) / its stored spread, at
most 1; it may fall below 0, as the stored best is itself a lucky draw. Each case's re-scored regrets are
kept in its case file (``"rescored"``, by budget), so a killed run resumes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from _warmstart_real_cases import config_seed
from _warmstart_real_rescore import RESCORE_SEEDS, chosen

BUDGETS = (5, 10)


def rescored_regret(block: Any, t: int, config: dict[str, Any], real: Any) -> float:
    """``config``'s loss on task ``t`` averaged over ``RESCORE_SEEDS``, on the regret's scale (a failed fit: 1)."""
    from automl_meta.knowledge._objective import cross_validated_loss

    stored = block.runs()[t][1]
    losses = []
    for seed in RESCORE_SEEDS:
        np.random.seed(config_seed(config, seed))
        losses.append(cross_validated_loss(block.space, block.task_type, config, real.X, real.y, seed=seed))
    loss, spread = float(np.mean(losses)), float(stored.max() - stored.min())
    if not math.isfinite(loss):
        return 1.0
    return min((loss - float(stored.min())) / spread, 1.0) if spread > 0 else 0.0


def rescore_case(path: Path, block: Any, t: int, real: Any) -> None:
    """Add the re-scored regrets at ``BUDGETS`` to the case file ``path`` (a case kept without its
    configurations cannot be re-scored: run it again with ``--fresh``)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # scikit-learn's dependency

    case = json.loads(path.read_text())
    if "rescored" in case:
        return
    if "configs" not in case:
        raise SystemExit(f"{path} was kept without its configurations: run again with --fresh to re-score")
    threadpool_limits(1)
    # A failed fit was kept as the task's worst loss, so every case has a configuration to return.
    study = {"values": case["losses"], "configs": case["configs"]}
    case["rescored"] = {
        str(b): rescored_regret(block, t, chosen(study, b), real) for b in BUDGETS if b <= len(case["losses"])
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(case))
    tmp.replace(path)  # a killed run leaves the case whole, re-scored or not


def mean_rescored(paths: dict[tuple[int, str, int], Path]) -> dict[str, dict[str, float]]:
    """Per sampler, the mean re-scored regret at each budget over the cases of ``paths``.

    ``paths`` holds each case's file by (block, sampler, task).
    """
    values: dict[str, dict[str, list[float]]] = {}
    for (_, name, _), path in paths.items():
        for b, r in json.loads(path.read_text()).get("rescored", {}).items():
            values.setdefault(name, {}).setdefault(b, []).append(r)
    by_budget = {name: sorted(per.items(), key=lambda x: int(x[0])) for name, per in values.items()}
    return {name: {b: float(np.mean(v)) for b, v in per} for name, per in by_budget.items()}
