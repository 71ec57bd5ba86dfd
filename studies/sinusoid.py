"""Sinusoid regression (Finn et al., 2017): MAML, Meta-SGD and iMAML, K = 5, 10, 20 shots.

Each learner is meta-trained per K with the protocol of the MAML and Meta-SGD
papers (MLP 40-40 ReLU, meta-batch 25, Adam 1e-3; MAML and Meta-SGD take one
inner step of size 0.01 in meta-training), then evaluated on 600 fresh tasks:
mean squared error on 100 query points after 1 and 10 adaptation steps, with
95% confidence intervals. The Meta-SGD paper's Table 1 gives the reference
figures (after one step). iMAML (Rajeswaran et al., 2019; no sinusoid figures
in its paper) adapts by 10 steps on its proximal objective (``IMAML_SETTINGS``)
and is held to MAML's figures.

Run ``python studies/sinusoid.py`` (full) or with ``--quick`` (2-3 minutes on 2 cores,
smaller run, results under studies/results/quick/). Writes ``sinusoid.csv``,
``sinusoid.json`` and ``sinusoid.png``; ``--learners imaml`` (a subset) runs only those
learners and writes ``sinusoid-imaml.*`` instead, leaving the full table as it is. On 2 otherwise idle
cores MAML and Meta-SGD runs take about 2 minutes each, iMAML runs (a curvature estimate, 10 safeguarded
inner and 5 conjugate-gradient steps per iteration, about 52 ms) about 35 minutes each.

The meta-training runs go to ``--jobs`` worker processes of one thread
each: these networks are tiny, so one thread per run is fastest, and several
threads per process on a shared machine slow everything down by oversubscription.
Full runs checkpoint under ``<out>/runs/sinusoid`` and resume when started again
(``--fresh`` starts over).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _parallel import keep, run_each
from _report import mean_ci95, output_dir, parser, print_table, save_figure, write_csv, write_json

import automl_meta as am

SHOTS = (5, 10, 20)
# iMAML needs an inner loop that nearly solves its proximal problem (its gradient assumes the solution):
# 10 steps with inner_lr * lam = 0.25 shrink the distance to it along flat directions by 0.75^10 ~ 0.06.
# In 1,500-iteration trials at K = 10, lam = 2 and lam = 5 (inner_lr 0.05) both reached 0.86 after 10 steps.
IMAML_SETTINGS = {"inner_steps": 10, "inner_lr": 0.05, "lam": 5.0, "cg_steps": 5}
LEARNERS = {
    "maml": (am.learners.MAML, {"inner_steps": 1, "inner_lr": 0.01}),
    "metasgd": (am.learners.MetaSGD, {"inner_steps": 1, "inner_lr": 0.01}),
    "imaml": (am.learners.IMAML, IMAML_SETTINGS),
}
# Meta-SGD paper, Table 1 (MSE after one step, 600 test tasks): the bar each run must meet (MAML's for iMAML).
PAPER = {"maml": {5: 1.13, 10: 0.77, 20: 0.48}, "metasgd": {5: 0.90, 10: 0.53, 20: 0.31}}
PAPER["imaml"] = PAPER["maml"]
COLORS = {"maml": "tab:blue", "metasgd": "tab:orange", "imaml": "tab:green"}
MAX_STEPS = 10
QUERY_POINTS = 100


def train(name: str, shots: int, iterations: int, seed: int, run_dir: Path) -> am.MetaArtifact:
    """One meta-training run; checkpoints and the final artifact go to ``run_dir/<name>-<shots>``."""
    cls, settings = LEARNERS[name]
    learner = cls(am.models.MLP([40, 40]), **settings)
    return am.MetaTrainer(
        learner,
        am.tasks.Sinusoid(shots=shots),
        meta_batch_size=25,
        iterations=iterations,
        outer_lr=1e-3,
        n_validation_tasks=200,
        eval_every=max(1, iterations // 20),
        seed=seed,
        checkpoint_dir=run_dir / f"{name}-{shots}",
        checkpoint_every=max(1, iterations // 10),
        resume=True,
        verbose=0,
    ).fit()


def _train_job(job: tuple[str, int, int, int, Path]) -> None:
    """One :func:`train` run in a worker process; its wall seconds are kept beside its checkpoints."""
    name, k, iterations, seed, run_dir = job
    torch.set_num_threads(1)
    t = time.perf_counter()
    train(name, k, iterations, seed, run_dir)
    seconds = time.perf_counter() - t
    keep(run_dir / f"{name}-{k}-seconds.json", {"seconds": seconds})
    print(f"trained {name} K={k} in {seconds:.0f} s", flush=True)


def train_all(names: list[str], iterations: int, seed: int, run_dir: Path, jobs: int) -> dict[tuple[str, int], float]:
    """Run every (learner, K) meta-training in up to ``jobs`` worker processes; return each run's wall seconds."""
    # The slowest runs first, so the last ones to finish are short.
    runs = sorted(((name, k) for k in SHOTS for name in names), key=lambda nk: nk[0] != "imaml")
    run_dir.mkdir(parents=True, exist_ok=True)
    run_each(_train_job, [(name, k, iterations, seed, run_dir) for name, k in runs], jobs)
    return {(n, k): json.loads((run_dir / f"{n}-{k}-seconds.json").read_text())["seconds"] for n, k in runs}


def mse_by_steps(artifact: am.MetaArtifact, batch) -> np.ndarray:
    """(MAX_STEPS + 1, n_tasks) query MSE after 0..MAX_STEPS adaptation steps."""
    return np.stack([artifact.learner.evaluate(batch, steps=s)[0].numpy() for s in range(MAX_STEPS + 1)])


def plot(path: Path, names: list[str], curves: dict, examples: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(SHOTS), figsize=(4.2 * len(SHOTS), 7.5))
    steps = np.arange(MAX_STEPS + 1)
    for j, k in enumerate(SHOTS):
        ax = axes[0, j]
        for name in names:
            m, color = curves[name][k], COLORS[name]
            mean, ci = m.mean(1), 1.96 * m.std(1, ddof=1) / np.sqrt(m.shape[1])
            ax.plot(steps, mean, marker="o", ms=3, color=color, label=name)
            ax.fill_between(steps, mean - ci, mean + ci, color=color, alpha=0.2)
            ax.axhline(PAPER[name][k], color=color, ls=":", lw=1)
        ax.set_yscale("log")
        ax.set(title=f"K = {k}: query MSE (dotted: paper, 1 step)", xlabel="adaptation steps", ylabel="MSE")
        ax.legend()
        ex = examples[k]
        ax = axes[1, j]
        ax.plot(ex["grid"], ex["truth"], color="black", lw=1.5, label="true")
        ax.scatter(ex["x"], ex["y"], color="black", zorder=3, label=f"{k} support points")
        for name in names:
            ax.plot(ex["grid"], ex[name], color=COLORS[name], lw=1.2, label=f"{name}, {MAX_STEPS} steps")
        ax.set(title=f"K = {k}: an example task", xlabel="x", ylabel="y")
        ax.legend(fontsize=7)
    save_figure(fig, path)


def example_task(test: am.tasks.Sinusoid, k: int, seed: int) -> dict:
    """One fresh K-shot task to draw: its true curve on a grid and its support points (``seed`` fixes it)."""
    ex_batch, amp, phase = test.sample_with_truth(1, rng=np.random.default_rng([20_000 + seed, k]))
    grid = np.linspace(-5, 5, 200)
    return {
        "grid": grid,
        "truth": amp[0] * np.sin(grid - phase[0]),
        "x": ex_batch.x_support[0, :, 0].numpy(),
        "y": ex_batch.y_support[0, :, 0].numpy(),
    }


def evaluate(
    names: list[str], run_dir: Path, n_eval: int, seed: int, train_seconds: dict[tuple[str, int], float]
) -> tuple[list[list], dict, dict, dict]:
    """Score each trained (learner, K) artifact on ``n_eval`` fresh tasks and adapt it to an example task.

    Returns
    -------
    rows : list of list
        The table's rows, one per (learner, K).
    summary : dict
        Query MSE after 1 and ``MAX_STEPS`` steps and their 95% half-widths, per learner and K.
    curves : dict
        Per learner and K, the (MAX_STEPS + 1, n_eval) query MSE after 0..MAX_STEPS steps.
    examples : dict
        Per K, the example task (:func:`example_task`) with each learner's adapted prediction on its grid.
    """
    curves: dict = {n: {} for n in names}
    examples: dict = {}
    rows, summary = (
        [],
        {"mse": {n: {} for n in names}, "mse_1_step": {n: {} for n in names}, "ci95": {n: {} for n in names}},
    )
    for k in SHOTS:
        test = am.tasks.Sinusoid(shots=k, query_shots=QUERY_POINTS)
        batch = test.sample(n_eval, rng=np.random.default_rng([10_000 + seed, k]))
        examples[k] = example_task(test, k, seed)
        for name in names:
            artifact = am.load(run_dir / f"{name}-{k}" / "artifact.ameta")
            m = mse_by_steps(artifact, batch)
            curves[name][k] = m
            (m1, c1), (m10, c10) = mean_ci95(m[1]), mean_ci95(m[MAX_STEPS])
            rows.append(
                [
                    name,
                    k,
                    f"{m1:.3f} ± {c1:.3f}",
                    f"{m10:.3f} ± {c10:.3f}",
                    PAPER[name][k],
                    "yes" if m10 <= PAPER[name][k] else "no",
                    f"{train_seconds[(name, k)]:.0f}",
                ]
            )
            summary["mse"][name][str(k)] = m10
            summary["mse_1_step"][name][str(k)] = m1
            summary["ci95"][name][str(k)] = {"1": c1, str(MAX_STEPS): c10}
            fitted = artifact.adapt(examples[k]["x"][:, None], examples[k]["y"], steps=MAX_STEPS)
            examples[k][name] = fitted.predict(examples[k]["grid"][:, None])
    return rows, summary, curves, examples


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__, "small run (2-3 minutes) for smoke tests")
    p.add_argument("--iterations", type=int, help="meta-training iterations per run")
    p.add_argument("--eval-tasks", type=int, help="fresh test tasks (default 600; 100 with --quick)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel training processes")
    p.add_argument("--fresh", action="store_true", help="discard earlier checkpoints of the full run")
    p.add_argument(
        "--learners", default=",".join(LEARNERS), help=f"comma-separated subset of {', '.join(LEARNERS)} (default: all)"
    )
    args = p.parse_args(argv)
    iterations = args.iterations or (600 if args.quick else 40_000)
    torch.set_num_threads(1)
    names = [n for n in args.learners.split(",") if n]
    if not names or any(n not in LEARNERS for n in names):
        p.error(f"--learners takes a comma-separated subset of {', '.join(LEARNERS)}, got {args.learners!r}")
    stem = "sinusoid" if set(names) == set(LEARNERS) else "-".join(["sinusoid", *names])
    n_eval = args.eval_tasks or (100 if args.quick else 600)
    out = output_dir(args.out, args.quick)
    scratch = tempfile.TemporaryDirectory() if args.quick else None
    run_dir = Path(scratch.name) if scratch else out / "runs" / "sinusoid"
    if args.fresh and not scratch:
        shutil.rmtree(run_dir, ignore_errors=True)
    start = time.perf_counter()
    train_seconds = train_all(names, iterations, args.seed, run_dir, max(1, args.jobs))

    rows, summary, curves, examples = evaluate(names, run_dir, n_eval, args.seed, train_seconds)
    headers = [
        "learner",
        "K",
        "MSE 1 step (95% CI)",
        f"MSE {MAX_STEPS} steps (95% CI)",
        "paper (1 step)",
        f"{MAX_STEPS}-step <= paper",
        "train s",
    ]
    print(f"\nSinusoid, {n_eval} test tasks, {QUERY_POINTS} query points, {iterations} meta-iterations per run")
    print_table(headers, rows)
    write_csv(out / f"{stem}.csv", headers, rows)
    summary.update(
        {
            "eval_tasks": n_eval,
            "quick": bool(args.quick),
            "iterations": iterations,
            "seconds": round(time.perf_counter() - start, 1),
            "imaml_settings": IMAML_SETTINGS,
        }
    )
    write_json(out / f"{stem}.json", summary)
    plot(out / f"{stem}.png", names, curves, examples)
    if scratch:
        scratch.cleanup()
    print(f"wrote {out / stem}.csv, .json and .png")
    return summary


if __name__ == "__main__":
    main()
