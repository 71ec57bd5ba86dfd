"""Engine speed: one MAML meta-iteration with the vmapped engine against the same step written with ``higher``.

Problem: sinusoid regression, 25 tasks, 10-shot support and query sets, MLP 40-40, second-order MAML with
1 or 5 inner steps, an Adam outer step included. Both sides run in this process, interleaved, with
warm-up; the figure is the median over repeats. The largest absolute difference between the two
meta-gradients is measured in float64.

Run ``python studies/engine_speed.py`` (a few minutes) or with ``--quick`` (a smoke test: one round of
two calls a side, seconds).
Writes ``engine_speed.csv``, ``engine_speed.json`` and ``engine_speed.png``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import _higher_reference
from _report import output_dir, parser, print_table, save_figure, write_csv, write_json

import automl_meta as am

STEPS = (1, 5)
TASKS, SHOTS, LR = 25, 10, 0.01


def make_learner(steps: int, dtype: torch.dtype) -> am.learners.MAML:
    learner = am.learners.MAML(am.models.MLP([40, 40]), inner_steps=steps, inner_lr=LR)
    return learner.setup("regression", 1, 1, generator=torch.Generator().manual_seed(0)).to(dtype)


def time_iterations(step, batches, repeats: int, per_repeat: int) -> float:
    """Median milliseconds per call of ``step(batch)`` over ``repeats`` blocks of ``per_repeat`` calls."""
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        for i in range(per_repeat):
            step(batches[(r * per_repeat + i) % len(batches)])
        times.append((time.perf_counter() - t0) / per_repeat * 1000)
    return statistics.median(times)


def measure(steps: int, repeats: int, per_repeat: int, rounds: int) -> dict[str, float]:
    tasks = am.tasks.Sinusoid(shots=SHOTS)
    batches = [tasks.sample(TASKS, rng=i) for i in range(20)]
    ours, ref = make_learner(steps, torch.float32), make_learner(steps, torch.float32)
    opt_ours, opt_ref = torch.optim.Adam(ours.parameters(), 1e-3), torch.optim.Adam(ref.model.parameters(), 1e-3)

    def step_ours(b):
        opt_ours.zero_grad()
        ours.meta_backward(b)
        opt_ours.step()

    def step_ref(b):
        opt_ref.zero_grad()
        _higher_reference.meta_backward(ref.model, b, steps=steps, inner_lr=LR)
        opt_ref.step()

    for b in batches[:rounds]:  # warm-up
        step_ours(b)
        step_ref(b)
    ms_ours, ms_ref = [], []
    for _ in range(rounds):  # interleave so both see the same machine state
        ms_ours.append(time_iterations(step_ours, batches, repeats, per_repeat))
        ms_ref.append(time_iterations(step_ref, batches, repeats, per_repeat))

    # Meta-gradients in float64, from the same initialisation and batch.
    a, b = make_learner(steps, torch.float64), make_learner(steps, torch.float64)
    batch64 = batches[0].to(torch.float64)
    a.meta_backward(batch64)
    _higher_reference.meta_backward(b.model, batch64, steps=steps, inner_lr=LR)
    diff = max(float((pa.grad - pb.grad).abs().max()) for pa, pb in zip(a.parameters(), b.parameters()))
    return {"ours_ms": statistics.median(ms_ours), "higher_ms": statistics.median(ms_ref), "grad_diff": diff}


def plot(path: Path, results: dict[int, dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    x = range(len(results))
    ax.bar([i - 0.2 for i in x], [r["ours_ms"] for r in results.values()], 0.4, label="automl-meta (vmap)")
    ax.bar([i + 0.2 for i in x], [r["higher_ms"] for r in results.values()], 0.4, label="higher (loop over tasks)")
    for i, r in zip(x, results.values()):
        ax.text(i, r["higher_ms"], f"{r['higher_ms'] / r['ours_ms']:.1f}x", ha="center", va="bottom")
    ax.set_xticks(list(x), [f"{s} inner step{'s' * (s > 1)}" for s in results])
    ax.set(ylabel="ms per meta-iteration", title=f"MAML, sinusoid, {TASKS} tasks, second order")
    ax.legend()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__, "few repeats (seconds), for smoke tests")
    args = p.parse_args(argv)
    out = output_dir(args.out, args.quick)
    # Quick: a smoke test of the whole path (the reference takes about a second per call on busy cores).
    repeats, per_repeat, rounds = (1, 2, 1) if args.quick else (5, 40, 3)
    results = {s: measure(s, repeats, per_repeat, rounds) for s in STEPS}
    headers = ["inner steps", "automl-meta ms", "higher ms", "ratio higher/ours", "max |grad diff| float64"]
    rows = [
        [s, r["ours_ms"], r["higher_ms"], r["higher_ms"] / r["ours_ms"], f"{r['grad_diff']:.1e}"]
        for s, r in results.items()
    ]
    print(f"MAML meta-iteration, sinusoid, {TASKS} tasks x {SHOTS} shots, MLP 40-40, {torch.get_num_threads()} threads")
    print_table(headers, rows)
    write_csv(out / "engine_speed.csv", headers, rows)
    summary = {
        "ratio_vs_higher": {str(s): r["higher_ms"] / r["ours_ms"] for s, r in results.items()},
        "ms": {str(s): {"automl_meta": r["ours_ms"], "higher": r["higher_ms"]} for s, r in results.items()},
        "max_abs_grad_diff_float64": max(r["grad_diff"] for r in results.values()),
        "threads": torch.get_num_threads(),
        "quick": bool(args.quick),
    }
    write_json(out / "engine_speed.json", summary)
    plot(out / "engine_speed.png", results)
    print(f"wrote {out / 'engine_speed.csv'}, {out / 'engine_speed.json'}, {out / 'engine_speed.png'}")
    return summary


if __name__ == "__main__":
    main()
