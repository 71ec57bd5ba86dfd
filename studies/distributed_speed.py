"""Distributed meta-training speed (1 and 2 processes, gloo) and iMAML's peak memory against MAML's.

Part 1, speed: meta-iterations per second of ``MetaTrainer`` on the sinusoid benchmark (10-shot tasks, MLP 40-40,
validation and checkpoints off) with the same global meta-batch run three ways on this machine: one process of one
thread, one process of two threads, and two processes of one thread each under ``torchrun --standalone`` (gloo),
each adapting half of every meta-batch. Settings: MAML (1 inner step) with meta-batches of 25 and 1,000 tasks, and
iMAML (10 inner steps, 5 conjugate-gradient steps) with 25. Each launch times a run of ``warmup + timed`` iterations
against one of ``warmup`` (so set-up cancels out); the figure is the median over repeated launches, interleaved so
that every way sees the same machine load.

Part 2, memory: the peak of memory allocated during one meta-iteration (``meta_backward`` on 25 tasks), beyond the
parameters and data already held, for MAML and iMAML with 1, 5 and 20 inner steps, measured from the allocation
events of :mod:`torch.profiler` on the CPU. MAML keeps every inner step's activations for its second-order
meta-gradient, so its peak grows with the steps; iMAML keeps none (implicit gradient), so it should not: the
acceptance criterion is iMAML's peak at 20 steps within 10% of its peak at 1 step.

Run ``python studies/distributed_speed.py`` (about 8 minutes on 2 busy cores) or with ``--quick`` (about a minute:
MAML with 25 tasks only, one launch per way). Writes ``distributed_speed.csv``, ``distributed_speed.json`` and
``distributed_speed.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _report import output_dir, parser, print_table, save_figure, write_csv, write_json

import automl_meta as am

SHOTS, HIDDEN = 10, [40, 40]
IMAML_SETTINGS = {"inner_steps": 10, "inner_lr": 0.05, "lam": 5.0, "cg_steps": 5}  # as in studies/sinusoid.py
# (name, learner, global meta-batch, warm-up iterations, timed iterations)
SPEED_CASES = [
    ("MAML, 25 tasks", "maml", 25, 20, 400),
    ("MAML, 1000 tasks", "maml", 1000, 3, 40),
    ("iMAML, 25 tasks", "imaml", 25, 5, 60),
]
WAYS = {"1 process x 1 thread": (1, 1), "1 process x 2 threads": (1, 2), "2 processes x 1 thread": (2, 1)}
MEMORY_STEPS = (1, 5, 20)
MEMORY_TASKS = 25


def make_learner(name: str, inner_steps: int | None = None) -> am.learners.Learner:
    if name == "maml":
        return am.learners.MAML(am.models.MLP(HIDDEN), inner_steps=inner_steps or 1, inner_lr=0.01)
    settings = {**IMAML_SETTINGS, **({"inner_steps": inner_steps} if inner_steps else {})}
    return am.learners.IMAML(am.models.MLP(HIDDEN), **settings)


# -- part 1: speed ------------------------------------------------------------------------------------
def _fit_seconds(name: str, batch: int, iterations: int) -> tuple[float, int]:
    """Wall seconds of ``fit()`` for ``iterations`` meta-iterations (no callbacks), and the process count."""
    trainer = am.MetaTrainer(
        make_learner(name),
        am.tasks.Sinusoid(shots=SHOTS),
        meta_batch_size=batch,
        iterations=iterations,
        n_validation_tasks=0,
        verbose=0,
    )
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start, trainer.world_size


def worker(cases: list[list], result_file: str) -> None:
    """One launch: time every case in this process (one of a torchrun group, or alone); rank 0 writes.

    A case's rate is ``timed`` over the difference between a run of ``warmup + timed`` iterations and one
    of ``warmup``: set-up, first calls and the final artifact cancel out.
    """
    from automl_meta.training.distributed import process_group_from_environment

    with process_group_from_environment():
        rates, world = {}, 1
        for label, name, batch, warmup, timed in cases:
            _fit_seconds(name, batch, warmup)  # first calls (tracing, lazy imports) are no iteration's cost
            short, _ = _fit_seconds(name, batch, warmup)
            full, world = _fit_seconds(name, batch, warmup + timed)
            rates[label] = timed / (full - short)
        if int(os.environ.get("RANK", "0")) == 0:
            Path(result_file).write_text(json.dumps({"rates": rates, "world_size": world}))


def launch(processes: int, threads: int, cases: list[tuple]) -> dict[str, float]:
    """Meta-iterations per second of each case, from one launch of ``processes`` x ``threads``."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "rates.json"
        script = [__file__, "--worker", json.dumps([list(c) for c in cases]), "--result-file", str(result)]
        if processes == 1:
            cmd = [sys.executable, *script]
        else:
            torchrun = str(Path(sys.executable).with_name("torchrun"))
            cmd = [torchrun, "--standalone", f"--nproc-per-node={processes}", "--max-restarts=0", *script]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{done.stderr[-3000:]}")
        record = json.loads(result.read_text())
    assert record["world_size"] == processes, record
    return record["rates"]


def measure_speed(cases: list[tuple], repeats: int) -> dict[str, dict[str, float]]:
    """Median meta-iterations per second by way and case, over interleaved repeated launches."""
    runs: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
    for r in range(repeats):
        for way, (processes, threads) in WAYS.items():
            runs[way].append(launch(processes, threads, cases))
            print(
                f"  repeat {r + 1}/{repeats}, {way}: "
                + ", ".join(f"{k} {v:.1f} it/s" for k, v in runs[way][-1].items())
            )
    return {way: {c[0]: statistics.median(run[c[0]] for run in runs[way]) for c in cases} for way in WAYS}


# -- part 2: memory -----------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_output() -> Iterator[None]:
    """Silence the profiler's start and stop lines, which its C++ side writes to the process's stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def peak_bytes(name: str, inner_steps: int) -> int:
    """Peak bytes allocated during one ``meta_backward`` (beyond what was allocated before it), on the CPU."""
    from torch.profiler import ProfilerActivity, profile

    learner = make_learner(name, inner_steps)
    learner.setup("regression", 1, 1, generator=torch.Generator().manual_seed(0))
    batch = am.tasks.Sinusoid(shots=SHOTS).sample(MEMORY_TASKS, rng=0)
    learner.meta_backward(batch)  # warm-up: lazily built kernels and caches are not the iteration's memory
    learner.zero_grad(set_to_none=True)
    with _quiet_output(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        learner.meta_backward(batch)
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns()
    )
    live = peak = 0
    for e in events:  # allocations are positive, frees negative
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def measure_memory() -> dict[str, dict[int, int]]:
    return {name: {s: peak_bytes(name, s) for s in MEMORY_STEPS} for name in ("maml", "imaml")}


# -- report -------------------------------------------------------------------------------------------
def plot(path: Path, speed: dict[str, dict[str, float]], memory: dict[str, dict[int, int]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    cases = list(next(iter(speed.values())))
    width = 0.8 / len(speed)
    for i, (way, rates) in enumerate(speed.items()):
        xs = [j + (i - (len(speed) - 1) / 2) * width for j in range(len(cases))]
        ax.bar(xs, [rates[c] / speed[next(iter(speed))][c] for c in cases], width, label=way)
    ax.axhline(1, color="black", lw=0.8)
    ax.set_xticks(range(len(cases)), cases)
    ax.set(ylabel="speed relative to 1 process x 1 thread", title="Meta-iterations per second (same meta-batch)")
    ax.legend(fontsize=8)
    for name, label in (("maml", "MAML (second order)"), ("imaml", "iMAML (implicit)")):
        bx.plot(MEMORY_STEPS, [memory[name][s] / 2**20 for s in MEMORY_STEPS], marker="o", label=label)
    bx.set(xlabel="inner steps", ylabel="peak MiB in one meta-iteration", title=f"Peak memory, {MEMORY_TASKS} tasks")
    bx.set_xticks(MEMORY_STEPS)
    bx.legend()
    save_figure(fig, path)


def report(speed: dict[str, dict[str, float]], memory: dict[str, dict[int, int]], quick: bool) -> dict:
    base, two = speed["1 process x 1 thread"], speed["2 processes x 1 thread"]
    imaml_ratio = memory["imaml"][20] / memory["imaml"][1]
    maml_ratio = memory["maml"][20] / memory["maml"][1]
    return {
        "iterations_per_second": speed,
        "speedup_2_processes": {c: two[c] / base[c] for c in base},
        "speedup_2_threads": {c: speed["1 process x 2 threads"][c] / base[c] for c in base},
        "peak_bytes": {name: {str(s): b for s, b in by_steps.items()} for name, by_steps in memory.items()},
        "imaml_peak_20_over_1": imaml_ratio,
        "maml_peak_20_over_1": maml_ratio,
        "acceptance_imaml_flat_within_10pct": abs(imaml_ratio - 1) <= 0.10,
        "acceptance_maml_grows": maml_ratio > 1.10,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "quick": quick,
    }


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__, "MAML with 25 tasks only, one launch per way (about a minute)")
    p.add_argument("--repeats", type=int, help="launches per way (default 3; 1 with --quick)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--result-file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        return worker(json.loads(args.worker), args.result_file) or {}
    out = output_dir(args.out, args.quick)
    load = os.getloadavg()[0]
    cases = [(label, name, batch, warm, timed // 2) for label, name, batch, warm, timed in SPEED_CASES[:1]]
    cases = cases if args.quick else SPEED_CASES
    print(f"speed: {len(cases)} case(s) x {len(WAYS)} ways (load average {load:.1f} on {os.cpu_count()} CPUs)")
    speed = measure_speed(cases, args.repeats or (1 if args.quick else 3))
    memory = measure_memory()
    summary = report(speed, memory, args.quick)
    summary["load_average_at_start"] = load
    headers = ["case", *WAYS, "2 processes / 1"]
    rows = [[c[0], *(speed[w][c[0]] for w in WAYS), summary["speedup_2_processes"][c[0]]] for c in cases]
    print("\nmeta-iterations per second (median over launches)")
    print_table(headers, rows)
    mem_rows = [[name, *(memory[name][s] / 2**20 for s in MEMORY_STEPS)] for name in memory]
    print("\npeak MiB allocated in one meta-iteration, by inner steps")
    print_table(["learner", *map(str, MEMORY_STEPS)], mem_rows)
    print(
        f"\niMAML peak 20 / 1 steps = {summary['imaml_peak_20_over_1']:.3f} (criterion: within 10%: "
        f"{'met' if summary['acceptance_imaml_flat_within_10pct'] else 'NOT met'}); "
        f"MAML 20 / 1 steps = {summary['maml_peak_20_over_1']:.2f}"
    )
    csv_rows = [["speed_it_per_s", w, c[0], speed[w][c[0]]] for w in WAYS for c in cases]
    csv_rows += [["peak_bytes", name, f"{s} inner steps", memory[name][s]] for name in memory for s in MEMORY_STEPS]
    write_csv(out / "distributed_speed.csv", ["measure", "way_or_learner", "case", "value"], csv_rows)
    write_json(out / "distributed_speed.json", summary)
    plot(out / "distributed_speed.png", speed, memory)
    print(f"wrote {out / 'distributed_speed.csv'}, {out / 'distributed_speed.json'}, {out / 'distributed_speed.png'}")
    return summary


if __name__ == "__main__":
    main()
