"""Warm-started tuning of scikit-learn estimators on real datasets never seen in meta-training.

Each of the 66 evaluation tasks of the corpus (``load_corpus("evaluation", max_rows=1000)``; never in the
knowledge file) is tuned in every search space of its task type, per seed, by

- ``MetaLearnedSampler`` (defaults: the bundled knowledge file; an empty temporary store), 50 trials (the
  criteria read its first 10; a study does not depend on its length, so they are those of a 10-trial study). It is
  given the task's meta-features (``describe(X, y, task_type)``), not ``(X, y)``: ``TaskDescription.from_data``
  cannot fingerprint tables with text columns (34 of the 66) and infers the type from y (2 regression tasks
  with integer targets would pass for classification). Parameters carry the Pipeline step prefix
  (``svc__C``), which tells the sampler random forests from extra trees;
- ``TPESampler``, 50 trials, and ``RandomSampler``, 20 trials (no knowledge);
- ``WS-CMA-ES``: ``CmaEsSampler(source_trials=...)`` warm-started with the knowledge file's runs of the 5
  nearest knowledge tasks of the same type (standardised meta-features); it models the non-conditional
  numerical parameters (one for ridge and k-neighbours), the others go to its independent (random)
  sampler; 10 trials.

Every trial scores ``automl_meta.knowledge._objective.cross_validated_loss``, the objective the knowledge
was built with, with NumPy's global state (which the unseeded forests, boosting and MLP draw from) seeded
per configuration, so that a configuration scores the same in every case and a run repeats. A failed fit
(NaN) is told to Optuna as a failed trial, as the knowledge build does; in the regret it counts as the
worst loss (regret 1 until a finite loss). The normalized regret after t trials is (best loss of the first
t - best loss any case saw on the (task, space)) / (worst finite loss any case saw there - that best).
Headline, per space and averaged over each task's spaces: Meta@10 vs TPE@50 (Meta no higher) and Meta@5 vs
WS-CMA-ES@10 (Meta lower), as paired differences per (task, seed), averaged over seeds per task, with a
95% percentile bootstrap interval over tasks. Beside them, for users who run longer studies, Meta@20 and
Meta@50 against TPE@20 and TPE@50 (``LONGER``).

The best loss after t trials is the best of t noisy estimates, so a longer search also wins more luck.
After the cases, the configuration each sampler would return (Meta@5, @10 and @50, TPE@10 and @50,
Random@20, WS-CMA-ES@10) is scored again on other shuffles of the folds and other estimator seeds, and the same
criteria are reported on that re-scored regret as well (``_warmstart_real_rescore``).

Cases are appended to ``<out>/runs/warmstart_real/cases.jsonl`` as they finish (a killed run resumes;
``--fresh`` starts over) and copied to ``<out>/warmstart_real_cases.jsonl.gz``, kept with the results so
a new checkout resumes. A case records its version (Optuna and scikit-learn; for MetaLearnedSampler its
``_SAMPLER_VERSION``; for the two that read it, the knowledge file's checksum): cases of another version
run again. ``--quick``: the 2 smallest tasks of each type, 2 cheap spaces each, 1 seed, TPE 20 and Random 10
trials (finishes in about a minute).

    python studies/warmstart_real.py --jobs 2            # full run (resumable), 1 seed: about 2.3 h on 2 cores
    python studies/warmstart_real.py --quick             # smoke run into studies/results/quick
    python studies/warmstart_real.py --jobs 2 --samplers TPESampler,RandomSampler   # the baselines alone

Writes ``warmstart_real.csv`` (mean regret and 95% interval per sampler, space and budget),
``warmstart_real.json`` (headline comparisons, the re-scored ones under ``rescored``, timings),
``warmstart_real.png`` (regret curves) and ``warmstart_real_rescored.jsonl.gz`` (the re-scored losses).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _warmstart_real_cases as cases
import _warmstart_real_rescore as rescore
from _report import mean_ci95, output_dir, parser, print_comparisons, print_table, save_figure, write_csv, write_json
from _warmstart_real_timing import knowledge_load_seconds, timings

# Measured on 6 tasks (size quantiles of each type, all spaces): 163 CPU s per classification task and 241 per
# regression task and seed, so one seed of the 66 tasks is about 3.7 CPU hours (1.8 h with --jobs 2); two would
# not fit in 3 hours.
DEFAULT_SEEDS = 1
QUICK_SPACES = ("k_neighbors", "svc", "svr")  # cheap; svc/svr give CMA-ES two parameters
BUDGETS = (1, 5, 10, 20, 50)
BOOTSTRAP = 10_000
# (sampler, budget, baseline, budget, relation): the acceptance criteria of the claim.
CRITERIA = (
    ("MetaLearnedSampler", 10, "TPESampler", 50, "no higher"),
    ("MetaLearnedSampler", 5, "WS-CMA-ES", 10, "lower"),
)
# Longer studies, reported beside the criteria: does the head start last, or would a user do better to hand a
# long study to TPE?
LONGER = (
    ("MetaLearnedSampler", 20, "TPESampler", 20, "no higher"),
    ("MetaLearnedSampler", 50, "TPESampler", 50, "no higher"),
)


def select_tasks(max_tasks: int | None, quick: bool) -> list[str]:
    """Task names: both types alternately, by name (or, quick, the 2 smallest of each type)."""
    tasks = cases.evaluation_tasks()
    by_type = {
        tt: sorted(
            (t for t in tasks.values() if t.task_type == tt), key=lambda t: (t.n_rows, t.name) if quick else t.name
        )
        for tt in ("classification", "regression")
    }
    if quick:
        return [t.name for tt in by_type for t in by_type[tt][:2]]
    mixed = [t.name for pair in zip(*by_type.values()) for t in pair]
    longest = max(by_type.values(), key=len)
    mixed += [t.name for t in longest[min(len(v) for v in by_type.values()) :]]
    return mixed[:max_tasks]


def check_held_out(names: list[str]) -> None:
    """Stop if an evaluation task is in the knowledge file: the study would not test unseen data."""
    known = {t["fingerprint"] for t in cases.knowledge().tasks} | {t["name"] for t in cases.knowledge().tasks}
    tasks = cases.evaluation_tasks()
    seen = [n for n in names if n in known or tasks[n].fingerprint in known]
    if seen:
        raise SystemExit(f"evaluation tasks found in the knowledge file: {seen}")


def regret_curves(selected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each case with its normalized regret after 1..n trials (a failed trial counts as the worst loss)."""
    lo: dict[tuple[str, str], float] = {}
    hi: dict[tuple[str, str], float] = {}
    for c in selected:
        finite = [v for v in c["values"] if v is not None]
        key = (c["task"], c["space"])
        if finite:
            lo[key], hi[key] = min(lo.get(key, math.inf), *finite), max(hi.get(key, -math.inf), *finite)
    out = []
    for c in selected:
        key = (c["task"], c["space"])
        best = np.minimum.accumulate([math.inf if v is None else v for v in c["values"]])
        spread = hi.get(key, 0.0) - lo.get(key, 0.0)
        scaled = (best - lo.get(key, 0.0)) / spread if spread > 1e-12 else np.zeros_like(best)
        regret = np.clip(np.where(np.isfinite(best), scaled, 1.0), 0.0, 1.0)
        out.append({**c, "regret": regret, "scale": (lo.get(key, 0.0), spread)})
    return out


def complete(selected: list[dict[str, Any]], seeds: int) -> list[dict[str, Any]]:
    """The cases of the (task, space) pairs that every sampler ran with every seed (regret needs them all)."""
    count: dict[tuple[str, str], int] = {}
    for c in selected:
        count[c["task"], c["space"]] = count.get((c["task"], c["space"]), 0) + 1
    return [c for c in selected if count[c["task"], c["space"]] == seeds * len(cases.SAMPLERS)]


def regret_table(curves: list[dict[str, Any]], spaces: list[str], trials: dict[str, int]) -> list[list[Any]]:
    """Per sampler, space ("all": every case) and budget: cases, mean regret and its normal 95% half-width."""
    rows = []
    for name in cases.SAMPLERS:
        for space in ["all"] + spaces:
            sel = [c["regret"] for c in curves if c["sampler"] == name and space in ("all", c["space"])]
            for b in (b for b in BUDGETS if b <= trials[name] and sel):
                m, h = mean_ci95([r[b - 1] for r in sel])
                rows.append([name, space, b, len(sel), round(m, 5), round(h, 5)])
    return rows


def paired(curves: list[dict[str, Any]], a: tuple[str, int], b: tuple[str, int], space: str) -> dict[str, Any]:
    """Mean over tasks of regret(a) - regret(b) per (task, seed) (averaged over the task's spaces for "all",
    then over seeds), with a 95% percentile bootstrap interval over tasks."""
    regret = {(c["task"], c["space"], c["sampler"], c["seed"]): c["regret"] for c in curves}
    per: dict[str, dict[int, list[float]]] = {}
    for (task, sp, name, seed), r in regret.items():
        if name == a[0] and space in ("all", sp):
            other = regret[task, sp, b[0], seed]
            per.setdefault(task, {}).setdefault(seed, []).append(float(r[a[1] - 1] - other[b[1] - 1]))
    d = np.array([np.mean([np.mean(v) for v in seeds.values()]) for seeds in per.values()])
    if len(d) == 0:
        return {"tasks": 0}
    boot = d[np.random.default_rng(0).integers(0, len(d), (BOOTSTRAP, len(d)))].mean(1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"tasks": len(d), "mean_difference": float(d.mean()), "ci95": [float(low), float(high)]}


def comparisons(
    curves: list[dict[str, Any]], spaces: list[str], trials: dict[str, int], criteria: tuple = CRITERIA
) -> list[dict[str, Any]]:
    """The acceptance criteria (or other ``criteria``) per space and over spaces, with a plain verdict each."""
    out = []
    for a, a_budget, b, b_budget, relation in criteria:
        a_budget, b_budget = min(a_budget, trials[a]), min(b_budget, trials[b])
        label = f"{a}@{a_budget} {'<=' if relation == 'no higher' else '<'} {b}@{b_budget}"
        for space in ["all"] + spaces:
            stats = paired(curves, (a, a_budget), (b, b_budget), space)
            if not stats["tasks"]:
                continue
            m, (low, high) = stats["mean_difference"], stats["ci95"]
            holds = m <= 0 if relation == "no higher" else m < 0
            confident = high <= 0 if relation == "no higher" else high < 0
            if holds and confident:
                verdict = "holds, the whole interval is " + ("below 0" if high < 0 else "at or below 0")
            elif holds:
                verdict = "holds on the mean, the interval reaches above 0"
            else:
                verdict = (
                    "fails, the whole interval is above 0" if low > 0 else "fails on the mean, the interval includes 0"
                )
            out.append(
                {
                    "criterion": label,
                    "space": space,
                    **stats,
                    "holds": holds,
                    "confident": confident,
                    "verdict": verdict,
                }
            )
    return out


def plot(path: Path, curves: list[dict[str, Any]], spaces: list[str]) -> None:
    """Mean regret curves on log axes, one panel per space and one over all of them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["all"] + spaces
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3 * rows), sharey=True, squeeze=False)
    for ax, space in zip(axes.flat, panels):
        for name in cases.SAMPLERS:
            sel = [c["regret"] for c in curves if c["sampler"] == name and space in ("all", c["space"])]
            if sel:
                mean = np.mean(np.stack(sel), 0)
                ax.plot(np.arange(1, len(mean) + 1), mean, label=name, lw=2.5 if name == "MetaLearnedSampler" else 1.2)
        ax.set(xscale="log", yscale="log", xlabel="trials", title=space)  # log: the late gaps are small
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("mean normalized regret")
    axes.flat[0].legend(fontsize=8)
    save_figure(fig, path)


def report(
    out: Path,
    selected: list[dict[str, Any]],
    trials: dict[str, int],
    seeds: int,
    quick: bool,
    expected: int,
    rescored: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    """Print the tables and write the CSV, the figure, and the summary main() writes as JSON."""
    curves = regret_curves(complete(selected, seeds))
    pairs = len({(c["task"], c["space"]) for c in curves})
    if pairs < expected:
        print(f"Reporting {pairs} of {expected} (task, space) pairs: the others are still to run", flush=True)
    if not curves:
        return {"pairs": 0, "pairs_expected": expected, "complete": False, "quick": quick}
    spaces = sorted({c["space"] for c in curves})
    rows = regret_table(curves, spaces, trials)
    headers = ["sampler", "space", "budget", "cases", "mean_regret", "ci95_half_width"]
    write_csv(out / "warmstart_real.csv", headers, rows)
    wide: dict[tuple[str, str], dict[int, float]] = {}
    for name, space, b, _, m, _ in rows:
        wide.setdefault((name, space), {})[b] = m
    print_table(
        ["sampler", "space"] + [f"@{b}" for b in BUDGETS],
        [[n, s] + [v.get(b, "") for b in BUDGETS] for (n, s), v in wide.items()],
    )
    tests = comparisons(curves, spaces, trials)
    print()
    print_comparisons("criterion", tests)
    print()
    ran = tuple(c for c in LONGER if c[1] <= trials[c[0]] and c[3] <= trials[c[2]])  # none in a quick run
    longer = comparisons(curves, spaces, trials, ran)
    if longer:
        print_comparisons("longer studies", longer)
        print()
    again = rescore.report(curves, list(rescored), spaces, trials, comparisons, ran)
    timing = timings(curves, spaces, seeds, quick)
    plot(out / "warmstart_real.png", curves, spaces)
    kb = cases.knowledge()
    return {
        "comparisons": tests,
        "longer": longer,
        "rescored": again,
        "regret": {f"{n}/{s}": {str(b): m for b, m in v.items()} for (n, s), v in wide.items()},
        "timing": timing,
        "knowledge_load_seconds": knowledge_load_seconds(),
        "knowledge": {"sha256": kb.manifest["sha256"], "tasks": len(kb.tasks), "blocks": len(kb.blocks)},
        "trials": trials,
        "seeds": seeds,
        "tasks": len({c["task"] for c in curves}),
        "pairs": pairs,
        "pairs_expected": expected,
        "complete": pairs == expected,
        "quick": quick,
        "interval": "paired: 95% percentile bootstrap over tasks (10,000 resamples) of the mean difference",
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from automl_meta.knowledge._objective import ESTIMATORS

    p = parser(__doc__, "4 small tasks, 2 spaces each, 1 seed, shorter TPE and random runs (a couple of minutes)")
    p.add_argument("--seeds", type=int, help=f"seeds per (task, space) (default {DEFAULT_SEEDS}; quick 1)")
    p.add_argument("--spaces", help="comma-separated search spaces (default: every space of each task's type)")
    p.add_argument("--max-tasks", type=int, help="only the first tasks (classification and regression alternately)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--fresh", action="store_true", help="discard the cases of an earlier run")
    p.add_argument(
        "--samplers",
        help="comma-separated samplers to run now (default all; e.g. TPESampler,RandomSampler, which do not read "
        "the knowledge file, while it is being built); the report needs all of them",
    )
    args = p.parse_args(argv)
    out = output_dir(args.out, args.quick)
    every = sorted({s for spaces in ESTIMATORS.values() for s in spaces})
    chosen = args.spaces.split(",") if args.spaces else list(QUICK_SPACES if args.quick else every)
    if unknown := set(chosen) - set(every):
        p.error(f"unknown spaces {sorted(unknown)}; choose from {', '.join(every)}")
    samplers = args.samplers.split(",") if args.samplers else list(cases.SAMPLERS)
    if unknown := set(samplers) - set(cases.SAMPLERS):
        p.error(f"unknown samplers {sorted(unknown)}; choose from {', '.join(cases.SAMPLERS)}")
    names = select_tasks(args.max_tasks if args.max_tasks is not None else (4 if args.quick else None), args.quick)
    check_held_out(names)
    seeds = args.seeds or (1 if args.quick else DEFAULT_SEEDS)
    trials = cases.QUICK_TRIALS if args.quick else cases.TRIALS
    runs = out / "runs" / "warmstart_real"
    runs.mkdir(parents=True, exist_ok=True)
    log, snapshot = runs / "cases.jsonl", out / "warmstart_real_cases.jsonl.gz"
    done = cases.load_cases(log, snapshot, args.fresh)
    have = {(c["task"], c["space"], c["sampler"], c["seed"]) for c in done if len(c["values"]) == trials[c["sampler"]]}
    tasks = cases.evaluation_tasks()
    wanted = [(t, s) for t in names for s in ESTIMATORS[tasks[t].task_type] if s in chosen]
    units = []
    for t, s in wanted:
        pending = [(n, seed) for seed in range(seeds) for n in samplers if (t, s, n, seed) not in have]
        if pending:
            units.append((t, s, pending, trials))
    print(
        f"{len(names)} tasks, {len(wanted)} (task, space) pairs, {seeds} seed(s): {len(units)} units to run", flush=True
    )
    cases.run_pending(units, done, log, snapshot, args.jobs)
    if stale := sum(c["version"] != cases.case_version(c["sampler"], c["space"]) for c in done):
        print(f"{stale} cases ran with another knowledge file (it changed during the run): run again to redo them")
    pairs = set(wanted)
    selected = {  # the last case of each key counts
        (c["task"], c["space"], c["sampler"], c["seed"]): c
        for c in done
        if (c["task"], c["space"]) in pairs
        and c["seed"] < seeds
        and len(c["values"]) == trials[c["sampler"]]
        and c["version"] == cases.case_version(c["sampler"], c["space"])
    }
    rescored = rescore.run(out, complete(list(selected.values()), seeds), args.fresh, args.jobs)
    summary = report(out, list(selected.values()), trials, seeds, args.quick, len(wanted), rescored)
    if summary["pairs"]:
        print(f"knowledge.load() in a fresh process: {summary['knowledge_load_seconds']:.3f} s")
    write_json(out / "warmstart_real.json", summary)
    return summary


if __name__ == "__main__":
    main()
