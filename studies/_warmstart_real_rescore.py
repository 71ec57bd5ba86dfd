"""Re-scoring for ``warmstart_real.py``: the configuration each sampler would return, scored on other folds.

A study's best loss after t trials is the minimum of t noisy estimates (a 3-fold score on at most 1,000
rows moves by a few rows' worth between shuffles): the more trials, the more of that minimum is luck,
the winner's curse. TPE's best of 50 beats a best of 10 partly that way, and the regret counts it as
skill. Here the configuration a sampler would return at a budget (its best so far, ``BUDGETS``) is
scored again by the same objective on other shuffles of the folds and other seeds of the estimators
(``RESCORE_SEEDS``, averaged): what the choice is worth on the user's data. Its re-scored regret is
(that loss - the pair's best search loss) / the pair's search spread, on the regret's scale; it may
fall below 0, since the search's best loss is itself a lucky draw.

Re-scored losses are kept like the cases: appended to ``<out>/runs/warmstart_real/rescored.jsonl`` and
copied to ``<out>/warmstart_real_rescored.jsonl.gz``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import _warmstart_real_cases as cases
import numpy as np

RESCORE_SEEDS = (1, 2)  # fold shuffles and estimator seeds other than the search's (0 and the configuration's)
BUDGETS = {"MetaLearnedSampler": (5, 10, 50), "TPESampler": (10, 50), "RandomSampler": (20,), "WS-CMA-ES": (10,)}


def chosen(case: dict[str, Any], budget: int) -> dict[str, Any] | None:
    """The configuration the case's study would return after ``budget`` trials (None: no trial succeeded)."""
    values = [math.inf if v is None else v for v in case["values"][:budget]]
    best = int(np.argmin(values))
    return case["configs"][best] if math.isfinite(values[best]) else None


def config_key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def rescore_version(space: str) -> str:
    """What a re-scored loss depends on: scikit-learn, the seeds, and for the SVMs the iteration cap."""
    import sklearn

    return f"scikit-learn {sklearn.__version__}; seeds {RESCORE_SEEDS}{cases.objective_version(space)}"


def pending_units(selected: list[dict[str, Any]], done: list[dict[str, Any]]) -> list[tuple[str, str, list]]:
    """Per (task, space), the chosen configurations that have no current re-scored loss yet."""
    have = {(r["task"], r["space"], r["config"]) for r in done if r["version"] == rescore_version(r["space"])}
    wanted: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for c in selected:
        for b in BUDGETS[c["sampler"]]:
            config = chosen(c, min(b, len(c["values"])))
            if config is not None and (c["task"], c["space"], config_key(config)) not in have:
                wanted.setdefault((c["task"], c["space"]), {})[config_key(config)] = config
    return [(t, s, list(configs.values())) for (t, s), configs in wanted.items()]


def rescored_loss(task_name: str, space: str, config: dict[str, Any]) -> float:
    """The objective's loss of ``config`` averaged over ``RESCORE_SEEDS`` (NaN if a fit fails)."""
    from automl_meta.knowledge._objective import cross_validated_loss

    task = cases.evaluation_tasks()[task_name]
    losses = []
    for seed in RESCORE_SEEDS:
        np.random.seed(cases.config_seed(config, seed))
        losses.append(cross_validated_loss(space, task.task_type, config, task.X, task.y, seed=seed))
    return float(np.mean(losses))


def run_unit(unit: tuple[str, str, list[dict[str, Any]], Any]) -> list[dict[str, Any]]:
    """Re-score the configurations of one (task, space)."""
    import warnings

    task_name, space, configs, _ = unit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings
        return [
            {
                "task": task_name,
                "space": space,
                "config": config_key(c),
                "loss": rescored_loss(task_name, space, c),
                "version": rescore_version(space),
            }
            for c in configs
        ]


def run(out: Path, selected: list[dict[str, Any]], fresh: bool, jobs: int) -> list[dict[str, Any]]:
    """Re-score the configurations the samplers chose in ``selected`` (pairs every sampler finished), kept
    like the cases; every re-scored loss so far."""
    log, snapshot = out / "runs" / "warmstart_real" / "rescored.jsonl", out / "warmstart_real_rescored.jsonl.gz"
    done = cases.load_cases(log, snapshot, fresh, version=lambda r: rescore_version(r["space"]))
    units = [(*u, None) for u in pending_units(selected, done)]
    if units:
        cases.run_pending(units, done, log, snapshot, jobs, work=run_unit, desc="re-scored")
    return done


def rescored_curves(curves: list[dict[str, Any]], done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each case with its re-scored regret at its ``BUDGETS`` (NaN elsewhere), on the regret's scale; an
    empty list while a chosen configuration has no re-scored loss. A failed re-scoring counts as regret 1."""
    current = [r for r in done if r["version"] == rescore_version(r["space"])]
    loss = {(r["task"], r["space"], r["config"]): r["loss"] for r in current}
    out = []
    for c in curves:
        lo, spread = c["scale"]
        regret = np.full(len(c["values"]), np.nan)
        for b in (min(b, len(c["values"])) for b in BUDGETS[c["sampler"]]):  # a quick run's shorter studies
            config = chosen(c, b)
            if config is None:
                regret[b - 1] = 1.0
                continue
            value = loss.get((c["task"], c["space"], config_key(config)))
            if value is None:
                return []
            scaled = (value - lo) / spread if spread > 1e-12 else 0.0
            regret[b - 1] = min(scaled, 1.0) if math.isfinite(value) else 1.0
        out.append({**c, "regret": regret})
    return out


def rescored_criteria(criteria: tuple) -> tuple:
    """Those of ``criteria`` (``warmstart_real.CRITERIA``'s form) whose two budgets are both re-scored."""
    return tuple(c for c in criteria if c[1] in BUDGETS[c[0]] and c[3] in BUDGETS[c[2]])


def report(
    curves: list[dict[str, Any]],
    done: list[dict[str, Any]],
    spaces: list[str],
    trials: dict[str, int],
    comparisons: Any,
    longer: tuple = (),
) -> dict:
    """Print the mean re-scored regret per sampler and budget and the criteria on it (``comparisons`` is
    ``warmstart_real.comparisons``), and those of ``longer`` whose budgets are re-scored; empty while
    re-scoring is unfinished."""
    from _report import print_comparisons, print_table

    rescored = rescored_curves(curves, done)
    if not rescored:
        return {}
    budgets = [(n, min(b, trials[n])) for n, bs in BUDGETS.items() for b in bs]
    means = {
        f"{n}@{b}": float(np.mean([c["regret"][b - 1] for c in rescored if c["sampler"] == n])) for n, b in budgets
    }
    print("\nRe-scored on other folds and seeds (the chosen configuration's regret without the search's luck):")
    print_table(["sampler@budget", "mean re-scored regret"], [[k, round(v, 5)] for k, v in means.items()])
    tests = comparisons(rescored, spaces, trials)
    print_comparisons("criterion (re-scored)", tests)
    kept = rescored_criteria(longer)
    more = comparisons(rescored, spaces, trials, kept) if kept else []
    if more:
        print_comparisons("longer studies (re-scored)", more)
    return {"mean_regret": means, "comparisons": tests, "longer": more, "seeds": list(RESCORE_SEEDS)}
