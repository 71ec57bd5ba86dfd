"""Learned optimizers, untuned, against tuned Adam and SGD+momentum on held-out training problems.

Held-out tasks, never seen in meta-training: scikit-learn's bundled datasets (iris, wine, breast
cancer, digits, diabetes) and two of its generators (moons, Friedman #1), each trained by two networks
wider and deeper than any in meta-training (meta-training used width 8-48 and depth 1-3; here 4 x 64
tanh and 4 x 128 ReLU), full batch, for 1000 steps: 10x the 100-step inner training horizon of
meta-training (50x its 20-step truncations). Features and regression targets are standardised on the
training split (75 %); the other 25 % gives the validation loss.

Methods: the three learned optimizers of ``studies/train_default_l2o.py`` (``studies/results/l2o/``)
with no tuning at all; Adam and SGD with momentum 0.9, each with the best of 7 log-spaced learning
rates per task in hindsight (by final training loss); and Adam at its default 1e-3. Reported per
method: final training and validation loss (geometric mean over tasks, relative to tuned Adam), steps
to reach tuned Adam's final training loss (as a ratio of tuned Adam's own steps; median over tasks),
wall time per step, divergences (NaN, or a final training loss above the starting loss), and in the
same run the time of one ``optimizer.step()`` on a 1M-parameter model, against ``torch.optim.Adam``.

Finished tasks are kept under ``<out>/runs/l2o_vs_adam/`` so a killed run resumes (``--fresh`` starts
over); ``--jobs 2`` trains two tasks at a time. ``--quick`` runs two small tasks for 60 steps (seconds).
Writes ``l2o_vs_adam.csv`` (one row per task and method), ``l2o_vs_adam.json`` (headline figures for the
default learned optimizer), ``l2o_vs_adam_details.json`` (every method's summary and the step overhead) and
``l2o_vs_adam.png`` (loss curves). ``--rule PATH --out DIR`` measures another controller artifact in place
of the trained one, and ``--baselines`` takes the other methods' runs from an earlier run's cache.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Collection
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _l2o_fullbatch_tasks import ARCHITECTURES, DATASETS, build_model, make_task
from _parallel import job_cache, keep, run_each
from _report import RESULTS, output_dir, parser, print_table, save_figure, write_csv, write_json
from _step_timing import step_ms

import automl_meta as am

TRAINING_HORIZON = 100  # inner steps per meta-training episode (studies/train_default_l2o.py)
HORIZON = 10 * TRAINING_HORIZON
ADAM_LRS = np.logspace(-4, -1, 7)  # 1e-4 ... 1e-1, half a decade apart (includes 1e-3)
SGD_LRS = np.logspace(-3, 0, 7)  # 1e-3 ... 1
LEARNED = ("hyper_controller", "mlp_optimizer", "lstm_optimizer")
LEARNED_LABELS = {"hyper_controller": "L2O controller", "mlp_optimizer": "L2O MLP", "lstm_optimizer": "L2O LSTM"}
COLUMNS = (  # of l2o_vs_adam.csv: the figures of one method on one task (summarise)
    "task",
    "method",
    "run",
    "final_train",
    "final_val",
    "steps_to_tuned_adam",
    "steps_ratio",
    "ms_per_step",
    "diverged",
    "beats_adam_default",
)


def train_run(task: dict, make_optimizer, steps: int) -> dict:
    """Full-batch training; the training loss before each step and after the last, and the time taken."""
    model = build_model(task)
    opt = make_optimizer(model.parameters())
    criterion = nn.CrossEntropyLoss() if task["kind"] == "classification" else nn.MSELoss()
    curve = []
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = criterion(model(task["Xtr"]), task["ytr"])
        curve.append(loss.detach().item())
        if not math.isfinite(curve[-1]):
            break
        loss.backward()
        try:
            opt.step()
        except FloatingPointError:  # LearnedOptimizer refuses NaN/inf gradients
            curve.append(math.nan)
            break
    seconds = time.perf_counter() - start
    with torch.no_grad():
        final = float(criterion(model(task["Xtr"]), task["ytr"]))
        val = float(criterion(model(task["Xva"]), task["yva"]))
    curve.append(final)
    n_steps = len(curve) - 1
    diverged = not (math.isfinite(final) and final <= curve[0]) or n_steps < steps
    return {
        "curve": curve,
        "final_train": final,
        "final_val": val,
        "ms_per_step": 1e3 * seconds / max(n_steps, 1),
        "diverged": bool(diverged),
    }


def learned_artifacts(quick: bool) -> dict[str, Path | str]:
    found = {name: RESULTS / "l2o" / f"{name}.ameta" for name in LEARNED}
    found = {k: v for k, v in found.items() if v.is_file()}
    if not found:  # a fresh checkout without trained rules still compares the bundled default
        found = {am.load("default-l2o").learner.name: "default-l2o"}
    return found


def methods(learned: dict[str, Path | str]) -> dict[str, callable]:
    out = {}
    for name, source in learned.items():
        artifact = am.load(source)
        out[LEARNED_LABELS[name]] = lambda ps, a=artifact: am.optim.LearnedOptimizer(ps, artifact=a)
    for lr in ADAM_LRS:
        out[f"Adam lr={lr:.3g}"] = lambda ps, lr=lr: torch.optim.Adam(ps, lr=float(lr))
    for lr in SGD_LRS:
        out[f"SGDm lr={lr:.3g}"] = lambda ps, lr=lr: torch.optim.SGD(ps, lr=float(lr), momentum=0.9)
    return out


def steps_to_reach(curve: list[float], target: float) -> float:
    """First step after which the training loss is at or below ``target`` (inf if never)."""
    for i, v in enumerate(curve):
        if math.isfinite(v) and v <= target * (1 + 1e-9):
            return float(i)
    return math.inf


def summarise(task_name: str, runs: dict[str, dict]) -> dict[str, dict]:
    """Per-method rows of one task, with the tuned baselines picked in hindsight."""

    def best(prefix: str) -> str:
        names = [n for n in runs if n.startswith(prefix) and not runs[n]["diverged"]]
        names = names or [n for n in runs if n.startswith(prefix)]
        return min(names, key=lambda n: runs[n]["final_train"] if math.isfinite(runs[n]["final_train"]) else math.inf)

    chosen = {"Adam (tuned)": best("Adam lr="), "SGDm (tuned)": best("SGDm lr="), "Adam 1e-3": "Adam lr=0.001"}
    chosen.update({n: n for n in runs if n.startswith("L2O")})
    tuned = runs[chosen["Adam (tuned)"]]
    target = tuned["final_train"]
    tuned_steps = max(steps_to_reach(tuned["curve"], target), 1.0)
    rows = {}
    for label, name in chosen.items():
        r = runs[name]
        reach = steps_to_reach(r["curve"], target)
        rows[label] = {
            "task": task_name,
            "method": label,
            "run": name,
            "final_train": r["final_train"],
            "final_val": r["final_val"],
            "steps_to_tuned_adam": reach,
            "steps_ratio": reach / tuned_steps,
            "ms_per_step": r["ms_per_step"],
            "diverged": r["diverged"],
            "beats_adam_default": r["final_train"] < runs["Adam lr=0.001"]["final_train"],
        }
    return rows


def step_overhead(learned: dict[str, Path | str], quick: bool) -> dict[str, dict[str, float]]:
    """Median time of ``optimizer.step()`` on a ~1M-parameter model (gradients fixed), each vs Adam; a rule
    whose controller runs every ``interval`` steps is timed over blocks of that many steps."""
    torch.manual_seed(0)
    width = 256 if quick else 1024
    model = nn.Sequential(
        nn.Linear(width // 2, width), nn.ReLU(), nn.Linear(width, width // 2), nn.ReLU(), nn.Linear(width // 2, 10)
    )
    n_params = sum(p.numel() for p in model.parameters())
    X, y = torch.randn(64, width // 2), torch.randint(0, 10, (64,))
    nn.functional.cross_entropy(model(X), y).backward()
    optimizers = {"Adam": lambda ps: torch.optim.Adam(ps, lr=1e-3)}
    optimizers.update(
        {LEARNED_LABELS[n]: (lambda ps, s=s: am.optim.LearnedOptimizer(ps, artifact=s)) for n, s in learned.items()}
    )
    reps = 5 if quick else 30
    times = {}
    for name, make in optimizers.items():
        times[name] = step_ms(make(model.parameters()), reps, warmup=3)
    return {name: {"ms": ms, "ratio_vs_adam": ms / times["Adam"], "n_params": n_params} for name, ms in times.items()}


def plot(results: list[dict], path: Path, names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2, math.ceil(len(names) / 2), figsize=(4.2 * math.ceil(len(names) / 2), 7.0), squeeze=False
    )
    for ax, name in zip(axes.flat, names):
        task = next(r for r in results if r["task"] == name)
        for label, run_name in task["chosen"].items():
            curve = np.asarray(task["runs"][run_name]["curve"], dtype=float)
            ax.plot(
                np.arange(len(curve)),
                curve,
                label=f"{label} ({run_name.split('=')[-1]})" if "tuned" in label else label,
                lw=1.2,
            )
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    save_figure(fig, path)


def _reusable(baselines: Path | None, dataset: str, arch: str, steps: int, names: Collection[str]) -> dict:
    """The runs of every method but the controller that another run's cache kept for this task."""
    path = None if baselines is None else baselines / f"{dataset}_{arch}.json"
    if path is None or not path.exists():
        return {}
    entry = json.loads(path.read_text())
    if entry.get("steps") != steps:
        return {}
    label = LEARNED_LABELS["hyper_controller"]
    return {k: v for k, v in entry["runs"].items() if k != label and k in names}


def run_task(job) -> None:
    """Train one held-out task with every method (but runs kept elsewhere) and keep its results in the cache."""
    dataset, arch, steps, cache, learned, baselines = job
    torch.set_num_threads(1)
    task = make_task(dataset, arch)
    t = time.perf_counter()
    made = methods(learned)
    reused = _reusable(baselines, dataset, arch, steps, made)
    runs = {name: reused.get(name) or train_run(task, make, steps) for name, make in made.items()}
    rows = summarise(task["name"], runs)
    chosen = {k: v["run"] for k, v in rows.items()}
    entry = {"task": task["name"], "steps": steps, "runs": runs, "rows": rows, "chosen": chosen}
    keep(cache / f"{dataset}_{arch}.json", entry)
    print(f"{task['name']}: {time.perf_counter() - t:.0f} s", flush=True)


def _options(argv: list[str] | None) -> argparse.Namespace:
    p = parser(__doc__, "two small tasks, 60 steps (seconds)")
    p.add_argument("--fresh", action="store_true", help="ignore finished tasks of an earlier run")
    p.add_argument("--jobs", type=int, default=1, help="tasks trained in parallel (single-threaded processes)")
    p.add_argument("--rule", help="a controller artifact measured in place of the trained one; give --out with it")
    p.add_argument("--baselines", type=Path, help="an earlier run's cache folder: reuse its other methods' runs")
    return p.parse_args(argv)


def _train_tasks(
    grid: list[tuple[str, str]],
    steps: int,
    cache: Path,
    learned: dict[str, Path | str],
    baselines: Path | None,
    n_jobs: int,
) -> list[dict]:
    """Train the tasks of ``grid`` not yet in ``cache``, ``n_jobs`` at a time; every task's cache entry, in the
    order of ``grid``."""
    todo = [(d, a) for d, a in grid if not (cache / f"{d}_{a}.json").exists()]
    todo.sort(key=lambda t: (t[0] != "digits", t[1] != "4x128-relu"))  # the longest first: balanced workers
    jobs = [(d, a, steps, cache, learned, baselines) for d, a in todo]
    run_each(run_task, jobs, n_jobs)
    return [json.loads((cache / f"{d}_{a}.json").read_text()) for d, a in grid]


def _geomean_vs_tuned_adam(rows: list[dict], tuned: list[dict], loss: str) -> float:
    """Geometric mean over tasks of a method's ``loss`` (``final_train`` or ``final_val``) relative to tuned
    Adam's; a task where the method's loss is not finite counts as 1e6 times tuned Adam's."""
    log_ratios = [
        math.log(max(a[loss], 1e-12) / max(b[loss], 1e-12)) if math.isfinite(a[loss]) else math.log(1e6)
        for a, b in zip(rows, tuned)
    ]
    return float(np.exp(np.mean(log_ratios)))


def _method_summary(results: list[dict], label: str, overhead: dict[str, dict[str, float]]) -> dict:
    """One method's figures over the tasks, and its ``step()`` time on the 1M-parameter model."""
    rows = [r["rows"][label] for r in results]
    tuned = [r["rows"]["Adam (tuned)"] for r in results]
    timing = overhead.get("Adam" if label.startswith("Adam") else label, {})  # Adam's step() is the same at any rate
    return {
        "median_steps_ratio_vs_tuned_adam": float(np.median([r["steps_ratio"] for r in rows])),
        "frac_beats_adam_default": float(np.mean([r["beats_adam_default"] for r in rows])),
        "divergences": int(sum(r["diverged"] for r in rows)),
        "train_loss_vs_tuned_adam_geomean": _geomean_vs_tuned_adam(rows, tuned, "final_train"),
        "val_loss_vs_tuned_adam_geomean": _geomean_vs_tuned_adam(rows, tuned, "final_val"),
        "ms_per_step_median": float(np.median([r["ms_per_step"] for r in rows])),
        "step_ms_1M": timing.get("ms"),
        "step_ratio_vs_adam_1M": timing.get("ratio_vs_adam"),
    }


def _print_summary(
    summary: dict[str, dict], default_name: str, n_tasks: int, steps: int, overhead: dict[str, dict[str, float]]
) -> None:
    """The table of every method's figures, the default learned optimizer marked."""
    table = [
        [
            label + (" (default)" if label == default_name else ""),
            s["train_loss_vs_tuned_adam_geomean"],
            s["val_loss_vs_tuned_adam_geomean"],
            s["median_steps_ratio_vs_tuned_adam"],
            f"{s['frac_beats_adam_default']:.0%}",
            s["divergences"],
            s["ms_per_step_median"],
            "-" if s["step_ms_1M"] is None else f"{s['step_ms_1M']:.2f} ({s['step_ratio_vs_adam_1M']:.2f}x)",
        ]
        for label, s in summary.items()
    ]
    n_params = next(iter(overhead.values()))["n_params"]
    print(
        f"\n{n_tasks} held-out tasks, {steps} full-batch steps each (meta-training horizon "
        f"{TRAINING_HORIZON}); losses are geometric means relative to tuned Adam."
    )
    print_table(
        [
            "method",
            "train loss / tuned Adam",
            "val loss / tuned Adam",
            "median steps ratio",
            "beats Adam 1e-3",
            "divergences",
            "ms/step (task)",
            f"step() ms, {n_params / 1e6:.2f}M params",
        ],
        table,
    )


def _write_summaries(
    out: Path,
    summary: dict[str, dict],
    default_name: str,
    tasks: list[str],
    steps: int,
    overhead: dict[str, dict[str, float]],
    quick: bool,
) -> dict:
    """Write the default learned optimizer's headline figures and every method's summary; the headline."""
    d = summary[default_name]
    headline = {
        "median_steps_ratio_vs_tuned_adam": d["median_steps_ratio_vs_tuned_adam"],
        "frac_beats_adam_default": d["frac_beats_adam_default"],
        "divergences": d["divergences"],
        "held_out_tasks": len(tasks),
        "quick": bool(quick),
    }
    write_json(out / "l2o_vs_adam.json", headline)
    write_json(
        out / "l2o_vs_adam_details.json",
        {
            "default": default_name,
            "horizon": steps,
            "training_horizon": TRAINING_HORIZON,
            "tasks": tasks,
            "methods": summary,
            "step_overhead_1M": overhead,
        },
    )
    return headline


def main(argv: list[str] | None = None) -> dict:
    args = _options(argv)
    torch.set_num_threads(1)
    out = output_dir(args.out, args.quick)
    cache = job_cache(out, "l2o_vs_adam", args.fresh)
    if args.quick:
        grid, steps = [("iris", "4x64-tanh"), ("diabetes", "4x64-tanh")], 60
    else:
        grid, steps = [(d, a) for d in DATASETS for a in ARCHITECTURES], HORIZON
    learned = learned_artifacts(args.quick)
    if args.rule:
        learned["hyper_controller"] = args.rule
    default_name = LEARNED_LABELS[am.load("default-l2o").learner.name]
    results = _train_tasks(grid, steps, cache, learned, args.baselines, args.jobs)
    labels = list(results[0]["rows"])
    write_csv(out / "l2o_vs_adam.csv", COLUMNS, [[r["rows"][m][h] for h in COLUMNS] for r in results for m in labels])
    overhead = step_overhead(learned, args.quick)
    summary = {label: _method_summary(results, label, overhead) for label in labels}
    _print_summary(summary, default_name, len(results), steps, overhead)
    tasks = [r["task"] for r in results]
    headline = _write_summaries(out, summary, default_name, tasks, steps, overhead, args.quick)
    plot(results, out / "l2o_vs_adam.png", tasks[: 2 if args.quick else 6])
    return headline


if __name__ == "__main__":
    main()
