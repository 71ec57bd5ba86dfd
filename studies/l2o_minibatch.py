"""The default learned optimizer, untuned, against tuned Adam and AdamW on held-out mini-batch training.

Twelve problems never used in meta-training (``studies/_l2o_problems.py``: four convolutional, four real
tables from the corpus's evaluation tasks, an MLP autoencoder, a deep tanh network, two MLPs; 1,500 to
3,000 mini-batch steps). Methods: ``default-l2o`` with no tuning, and the same rule told the run's length
("L2O (total_steps)": ``LearnedOptimizer(total_steps=...)`` cools down over the last 20% of the steps);
Adam at each of 7 log-spaced learning rates (1e-4 to 1e-1, 1e-3 among them); AdamW (weight decay 0.01)
with a cosine schedule to 0 (over the run's length) at each of the same 7. Every method starts from the
same weights and sees the same mini-batches.

Each problem is trained from ``--seeds`` seeds (3; each seed draws other initial weights and another
order of mini-batches): single runs are too noisy to compare on test loss, as the test loss of one
method on one problem can differ by 1.8x between two seeds. A method's curves on a problem are the
geometric means over seeds at each evaluation, and every figure below is computed from them.

Per problem and method: the final training loss (the whole training split, evaluated after the last
step), the test loss at the end and at its best evaluation (every 1/50 of the run), the steps to reach
tuned Adam's final training loss, the wall time per step, and divergence (a non-finite loss, or a final
training loss above the starting one). "Adam (tuned)" and "AdamW-cos (tuned)" are the best of their 7
rates in hindsight by final training loss; for test losses the reference is Adam tuned in hindsight on
final test loss (the json also gives the share within 1.1x of the "Adam (tuned)" run's test loss). In
the same run, ``optimizer.step()`` is timed on a 10k- and a 1M-parameter MLP and on a CNN of 70 small
tensors against ``torch.optim.Adam(foreach=True)``, in alternating blocks of whole controller intervals
(``_step_timing.step_cost``).

Finished (problem, seed) pairs are kept under ``<out>/runs/l2o_minibatch/`` so a killed run resumes
(``--fresh`` starts over); ``--jobs 2`` trains two at a time. ``--quick``: two problems, 60 steps (10
evaluations), 3 rates, 2 seeds.
``--rule PATH --out DIR`` measures another learned optimizer (an artifact) in place of ``default-l2o``;
``--baselines`` takes the Adam and AdamW runs (not the learned rule's) from an earlier run's cache (same
problems, steps and evaluations) instead of training them again.
Writes ``l2o_minibatch.csv`` (one row per problem and method), ``l2o_minibatch.json`` (the acceptance
figures of the default, every method's shares of the same criteria, on how many problems any run of the
study meets the first and the third together (``_l2o_acceptance``), the step costs) and
``l2o_minibatch.png`` (curves).
``--suite dev`` runs the development suite instead (``_l2o_problems.DEV_PROBLEMS``: the same families on
data the held-out problems do not use) and writes ``l2o_minibatch-dev.*``: compare candidate rules there,
and measure only the chosen one on the held-out problems.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _l2o_acceptance import acceptance, shares
from _l2o_problems import SUITES, Problem, make_problem
from _parallel import job_cache, keep, run_each
from _report import output_dir, parser, print_table, save_figure, write_csv, write_json
from _step_timing import step_cost

import automl_meta as am

LRS = np.logspace(-4, -1, 7)  # 1e-4 ... 1e-1, half a decade apart (includes 1e-3)
QUICK_LRS = np.array([1e-3, 1e-2, 1e-1])
N_EVALS = 50  # evaluations of both splits per run (and one before the first step)
QUICK_EVALS = 10  # --quick: a 60-step run evaluated at every step would spend most of its time evaluating
DEFAULT = "L2O (default)"
TOLD = "L2O (total_steps)"  # the same rule told the run's length: it cools down over the last 20%
LEARNED = (DEFAULT, TOLD)
QUICK_PROBLEMS = ("digits/cnn-small", "table-regression-2/mlp-2x128")
SEEDS, QUICK_SEEDS = 3, 2


def optimizers(lrs: np.ndarray, steps: int, rule: str = "default-l2o") -> dict[str, Callable[[Any], tuple[Any, Any]]]:
    """Name -> ``make(params) -> (optimizer, scheduler or None)``; ``rule`` is the learned optimizer's artifact."""
    artifact = am.load(rule)
    out: dict[str, Callable[[Any], tuple[Any, Any]]] = {
        DEFAULT: lambda ps: (am.optim.LearnedOptimizer(ps, artifact=artifact), None),
        TOLD: lambda ps: (am.optim.LearnedOptimizer(ps, artifact=artifact, total_steps=steps), None),
    }
    for lr in lrs:
        out[f"Adam lr={lr:.3g}"] = lambda ps, lr=lr: (torch.optim.Adam(ps, lr=float(lr), foreach=True), None)

        def adamw(ps: Any, lr: float = float(lr)) -> tuple[Any, Any]:
            opt = torch.optim.AdamW(ps, lr=lr, weight_decay=0.01, foreach=True)
            return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)

        out[f"AdamW-cos lr={lr:.3g}"] = adamw
    return out


def _evaluate(problem: Problem, model: nn.Module) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        train = float(problem.loss(model(problem.Xtr), problem.ytr))
        test = float(problem.loss(model(problem.Xte), problem.yte))
    model.train()
    return train, test


def train_run(
    problem: Problem, make: Callable[[Any], tuple[Any, Any]], steps: int, seed: int = 0, evals: int = N_EVALS
) -> dict:
    """Mini-batch training; both splits' losses at ``evals`` evenly spaced steps, and the time per step."""
    model = problem.build(seed)
    opt, schedule = make(model.parameters())
    gen = torch.Generator().manual_seed(seed)  # every method sees the same batches
    n, batch = len(problem.Xtr), problem.spec.batch
    every = max(steps // evals, 1)
    at, train, test = [0], *([v] for v in _evaluate(problem, model))
    order, pos, seconds, diverged = torch.randperm(n, generator=gen), 0, 0.0, False
    for step in range(1, steps + 1):
        if pos + batch > n:  # a new epoch
            order, pos = torch.randperm(n, generator=gen), 0
        rows = order[pos : pos + batch]
        pos += batch
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = problem.loss(model(problem.Xtr[rows]), problem.ytr[rows])
        if not torch.isfinite(loss):
            diverged = True
            break
        loss.backward()
        try:
            opt.step()
        except FloatingPointError:  # LearnedOptimizer refuses non-finite gradients
            diverged = True
            break
        if schedule is not None:
            schedule.step()
        seconds += time.perf_counter() - start
        if step % every == 0 or step == steps:
            at.append(step)
            for curve, v in zip((train, test), _evaluate(problem, model)):
                curve.append(v)
    done = at[-1]
    if diverged:  # the run ends here, with no usable model: its final losses are NaN
        at.append(step)
        train.append(math.nan)
        test.append(math.nan)
    diverged = diverged or not math.isfinite(train[-1]) or train[-1] > train[0]
    return {"at": at, "train": train, "test": test, "ms_per_step": 1e3 * seconds / max(done, 1), "diverged": diverged}


def combine(seed_runs: list[dict[str, dict]]) -> dict[str, dict]:
    """Per method, one run from its runs under several seeds: the geometric mean of each curve at every
    evaluation (NaN from a divergence on), the mean time per step, diverged if any seed diverged."""
    out = {}
    for label in seed_runs[0]:
        runs = [r[label] for r in seed_runs]
        full = max(runs, key=lambda r: len(r["at"]))  # a diverged seed's curves stop early
        out[label] = {
            "at": full["at"],
            "train": _mean_curve([r["train"] for r in runs], len(full["at"])),
            "test": _mean_curve([r["test"] for r in runs], len(full["at"])),
            "ms_per_step": float(np.mean([r["ms_per_step"] for r in runs])),
            "diverged": any(r["diverged"] for r in runs),
            "seeds": len(runs),
        }
    return out


def _mean_curve(curves: list[list[float]], n: int) -> list[float]:
    """The geometric mean of curves at each of ``n`` points (NaN where a curve is NaN or has stopped)."""
    padded = np.array([c + [math.nan] * (n - len(c)) for c in curves], dtype=float)
    logs = np.log(np.maximum(padded, 1e-12))  # a loss of exactly 0 counts as 1e-12, as in _geomean
    return [float(v) for v in np.exp(logs.mean(axis=0))]


def _best(runs: dict[str, dict], prefix: str, key: str) -> str:
    """The run of ``prefix`` with the lowest final ``key`` loss (non-diverged ones first)."""
    names = [n for n in runs if n.startswith(prefix)]
    ok = [n for n in names if not runs[n]["diverged"]] or names

    def final(n: str) -> float:
        v = runs[n][key][-1]
        return v if math.isfinite(v) else math.inf

    return min(ok, key=final)


def steps_to_reach(run: dict, target: float) -> float:
    """First evaluated step at which the training loss is at or below ``target`` (inf if never)."""
    for step, v in zip(run["at"], run["train"]):
        if math.isfinite(v) and v <= target * (1 + 1e-9):
            return float(step)
    return math.inf


def summarise(name: str, runs: dict[str, dict]) -> dict[str, dict]:
    """Rows of one problem: the default, the tuned baselines and Adam at 1e-3, against the references."""
    chosen = {
        DEFAULT: DEFAULT,
        TOLD: TOLD,
        "Adam (tuned)": _best(runs, "Adam lr=", "train"),
        "AdamW-cos (tuned)": _best(runs, "AdamW-cos lr=", "train"),
        "Adam 1e-3": "Adam lr=0.001",
    }
    tuned, tuned_test = runs[chosen["Adam (tuned)"]], runs[_best(runs, "Adam lr=", "test")]
    adam_1e3 = runs["Adam lr=0.001"]
    tuned_steps = max(steps_to_reach(tuned, tuned["train"][-1]), 1.0)
    rows = {}
    for label, run_name in chosen.items():
        r = runs[run_name]
        reach = steps_to_reach(r, tuned["train"][-1])
        rows[label] = {
            "problem": name,
            "method": label,
            "run": run_name,
            "final_train": r["train"][-1],
            "final_test": r["test"][-1],
            "best_test": float(np.nanmin(r["test"])) if np.isfinite(r["test"]).any() else math.nan,
            "train_vs_tuned_adam": r["train"][-1] / tuned["train"][-1],
            "test_vs_tuned_adam": r["test"][-1] / tuned_test["test"][-1],
            "test_vs_train_tuned_adam": r["test"][-1] / tuned["test"][-1],
            "steps_ratio": reach / tuned_steps,
            "ms_per_step": r["ms_per_step"],
            "diverged": r["diverged"],
            "train_le_adam_1e3": r["train"][-1] <= adam_1e3["train"][-1],
        }
    return rows


def _file(name: str, seed: int) -> str:
    """The cache file of one problem trained from one seed."""
    return name.replace("/", "_") + f"_seed{seed}.json"


def _reusable(
    baselines: Path | None, name: str, seed: int, steps_evals: tuple[int, int], labels: Collection[str]
) -> dict[str, dict]:
    """The baseline runs (every method but the learned optimizer) of ``name`` and ``seed`` kept in another
    run's cache, if it ran the same ``steps_evals`` (steps, evaluations)."""
    path = None if baselines is None else baselines / _file(name, seed)
    if path is None or not path.exists():
        return {}
    entry = json.loads(path.read_text())
    if (entry["steps"], entry.get("evals", N_EVALS)) != steps_evals:
        return {}
    return {k: v for k, v in entry["runs"].items() if k not in LEARNED and k in labels}


def run_problem(job: tuple[str, int, tuple[int, int], np.ndarray, Path, str, Path | None]) -> None:
    """Train one problem from one seed with every method (but baselines kept elsewhere) and keep its results
    in the cache."""
    name, seed, (steps, evals), lrs, cache, rule, baselines = job
    torch.set_num_threads(1)
    problem = make_problem(name)
    t = time.perf_counter()
    methods = optimizers(lrs, steps, rule)
    reused = _reusable(baselines, name, seed, (steps, evals), methods)
    runs = {label: reused.get(label) or train_run(problem, make, steps, seed, evals) for label, make in methods.items()}
    entry = {
        "problem": problem.name,
        "family": problem.spec.family,
        "steps": steps,
        "evals": evals,
        "seed": seed,
        "runs": runs,
    }
    keep(cache / _file(name, seed), entry)
    print(f"{problem.name}, seed {seed}: {time.perf_counter() - t:.0f} s", flush=True)


def _geomean(values: list[float]) -> float:
    logs = [math.log(max(v, 1e-12)) if math.isfinite(v) else math.log(1e6) for v in values]
    return float(np.exp(np.mean(logs)))


def report(
    results: list[dict], rows: list[dict[str, dict]], cost: dict, out: Path, stem: str = "l2o_minibatch"
) -> dict[str, Any]:
    labels = list(rows[0])
    headers = list(rows[0][DEFAULT])
    write_csv(out / f"{stem}.csv", headers, [[r[m][h] for h in headers] for r in rows for m in labels])
    table = []
    for label in labels:
        mine = [r[label] for r in rows]
        met = shares(rows, label)
        table.append(
            [
                label,
                _geomean([r["train_vs_tuned_adam"] for r in mine]),
                _geomean([r["test_vs_tuned_adam"] for r in mine]),
                float(np.median([r["steps_ratio"] for r in mine])),
                *(round(met[k] * len(mine)) for k in met),
                int(sum(r["diverged"] for r in mine)),
                float(np.median([r["ms_per_step"] for r in mine])),
            ]
        )
    print(f"\n{len(rows)} mini-batch problems ({stem}); losses are geometric means relative to tuned Adam;")
    print("problems meeting each criterion: train <= Adam 1e-3's, train <= tuned Adam's, test within 1.1x of")
    print("Adam tuned on test loss, test within 1.1x of Adam tuned on training loss (as in the acceptance)")
    print_table(
        ["method", "train / tuned Adam", "test / tuned Adam", "median steps ratio", "train <= Adam 1e-3",
         "train <= tuned", "test 1.1x test-tuned", "test 1.1x train-tuned", "divergences", "ms/step"],
        table,
    )  # fmt: skip
    columns = ("n_params", "n_tensors", "adam_ms", "l2o_ms", "ratio", "cooling_ms", "cooling_ratio")
    print_table(
        ["model", "parameters", "tensors", "Adam step() ms", "L2O step() ms", "ratio", "cooling ms", "ratio"],
        [[k, *(v[c] for c in columns)] for k, v in cost.items()],
    )
    summary = {**acceptance(rows, cost, [r["runs"] for r in results], DEFAULT), "step_cost": cost}
    print(json.dumps({k: v for k, v in summary.items() if k not in ("targets", "step_cost", "methods")}, indent=1))
    write_json(out / f"{stem}.json", summary)
    plot(results, out / f"{stem}.png")
    return summary


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(results), 4)
    fig, axes = plt.subplots(
        math.ceil(len(results) / cols), cols, figsize=(4.2 * cols, 3.4 * math.ceil(len(results) / cols)), squeeze=False
    )
    for ax, res in zip(axes.flat, results):
        runs = res["runs"]
        shown = {DEFAULT: DEFAULT, TOLD: TOLD, "Adam (tuned)": _best(runs, "Adam lr=", "train"),
                 "Adam 1e-3": "Adam lr=0.001", "AdamW-cos (tuned)": _best(runs, "AdamW-cos lr=", "train")}  # fmt: skip
        for (label, name), color in zip(shown.items(), ("C3", "C1", "C0", "C7", "C2")):
            r = runs[name]
            tag = label if name == label else f"{label} ({name.split('=')[-1]})"
            ax.plot(r["at"], r["train"], color=color, lw=1.3, label=f"{tag} train")
            ax.plot(r["at"], r["test"], color=color, lw=1.0, ls="--")
        ax.set_yscale("log")
        ax.set_title(res["problem"], fontsize=8)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (solid train, dashed test)", fontsize=7)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(results) :]:
        ax.axis("off")
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__, "two problems, 60 steps, 3 learning rates (seconds)")
    p.add_argument("--fresh", action="store_true", help="ignore finished problems of an earlier run")
    p.add_argument("--jobs", type=int, default=1, help="problems trained in parallel (single-threaded processes)")
    p.add_argument("--seeds", type=int, help=f"seeds per problem (default {SEEDS}; {QUICK_SEEDS} with --quick)")
    p.add_argument("--rule", default="default-l2o", help="the learned optimizer (artifact path); give --out with it")
    p.add_argument(
        "--baselines", type=Path, help="an earlier run's cache folder (<out>/runs/l2o_minibatch): reuse its baselines"
    )
    p.add_argument(
        "--suite", choices=sorted(SUITES), default="held-out", help="the held-out problems, or the development suite"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = output_dir(args.out, args.quick)
    cache = job_cache(out, "l2o_minibatch", args.fresh)
    problems = SUITES[args.suite]
    # --quick: the two quick problems, or their counterparts in the development suite
    quick = [list(problems)[list(SUITES["held-out"]).index(n)] for n in QUICK_PROBLEMS]
    names = quick if args.quick else list(problems)
    lrs = QUICK_LRS if args.quick else LRS
    seeds = range(args.seeds or (QUICK_SEEDS if args.quick else SEEDS))
    steps = {n: 60 if args.quick else problems[n].steps for n in names}
    todo = [(n, s) for n in names for s in seeds if not (cache / _file(n, s)).exists()]
    todo.sort(key=lambda job: -steps[job[0]] * problems[job[0]].batch)  # the longest first: balanced
    evals = QUICK_EVALS if args.quick else N_EVALS
    jobs = [(n, s, (steps[n], evals), lrs, cache, args.rule, args.baselines) for n, s in todo]
    run_each(run_problem, jobs, args.jobs)
    results = []
    for n in names:
        entries = [json.loads((cache / _file(n, s)).read_text()) for s in seeds]
        results.append({**entries[0], "seeds": len(entries), "runs": combine([e["runs"] for e in entries])})
    rows = [summarise(r["problem"], r["runs"]) for r in results]
    stem = "l2o_minibatch" if args.suite == "held-out" else f"l2o_minibatch-{args.suite}"
    return report(results, rows, step_cost(args.rule, args.quick), out, stem)


if __name__ == "__main__":
    main()
