"""Which Adam learning rates a meta-training distribution rewards, and which rates a learned rule sets on it.

A learned rule can only learn the rates that its meta-training problems reward. This development aid draws
``--problems`` problems from ``OptimizeeTasks``, set by the same options as ``train_default_l2o.py``
(``--shots``, ``--widths``, ``--cnn-fraction``, ...), and trains each for ``--steps`` mini-batch steps
(batches of ``--batch-size``) with Adam at each of the 7 rates of ``l2o_minibatch.py`` (1e-4 to 1e-1) and
with the learned rule ``--rule`` (default ``default-l2o``). Per kind of problem it reports the rates that
end lowest on the whole training set and on the held-out rows, next to the rates the rule sets (the
geometric mean over tensors, at the last step, of a rule that keeps per-tensor rates, as
``HyperController`` does). For comparison it reads the rates of "Adam (tuned)" on the mini-batch
suites from ``studies/results/l2o_minibatch*.csv``.

A distribution whose best rates lie far from the suites' teaches a rule rates that do not carry over,
however well meta-training converges; this tells in minutes, before an hour of meta-training.

Run ``python studies/l2o_rates.py`` (about a minute), e.g. with ``--widths 32 256 --shots 256 1024 --steps
300`` for another distribution. Writes ``l2o_rates.csv`` (one row per problem), ``l2o_rates.json`` (per
kind, the median best rates, the rule's rate and its divergences) and ``l2o_rates.png`` (best rates per problem
and the suites').
``--quick``: 4 problems of 20 steps.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _report import RESULTS, output_dir, parser, print_table, save_figure, write_csv, write_json
from l2o_minibatch import LRS
from train_default_l2o import add_problem_options, problems

import automl_meta as am
from automl_meta.tasks import OptimizeeBatch

SUITE_FILES = {"held-out suite": "l2o_minibatch.csv", "development suite": "l2o_minibatch-dev.csv"}


def kind_of(batch: OptimizeeBatch) -> str:
    """The problem's kind as the table groups it: quadratic, cnn, autoencoder, mlp-synthetic or mlp-real."""
    d = batch.description
    return f"mlp-{d['data']}" if d["kind"] == "mlp" else str(d["kind"])


def train(batch: OptimizeeBatch, make: Any, steps: int, batch_size: int, seed: int) -> tuple[float, float, Any]:
    """Train the batch's one problem with ``make(params)``: the final training and held-out losses (NaN after
    a divergence), the optimizer."""
    params = {k: v[0].clone().requires_grad_(True) for k, v in batch.params.items()}
    train_data, val_data = ({k: v[0] for k, v in d.items()} for d in (batch.train, batch.val))
    opt = make(list(params.values()))
    gen = torch.Generator().manual_seed(seed)  # every optimizer sees the same mini-batches
    for _ in range(steps):
        rows = {k: v[0] for k, v in batch.minibatch(batch_size, gen).items()}
        opt.zero_grad(set_to_none=True)
        batch.loss(params, rows).backward()
        try:
            opt.step()
        except FloatingPointError:  # LearnedOptimizer refuses non-finite gradients: the run diverged
            return math.nan, math.nan, opt
    with torch.no_grad():
        return float(batch.loss(params, train_data)), float(batch.loss(params, val_data)), opt


def best_rate(losses: list[float]) -> float:
    """The rate of ``LRS`` whose loss is lowest (non-finite losses lose); NaN when none is finite."""
    finite = [v if math.isfinite(v) else math.inf for v in losses]
    return float(LRS[int(np.argmin(finite))]) if any(math.isfinite(v) for v in finite) else math.nan


def rule_rate(opt: torch.optim.Optimizer) -> float:
    """The geometric mean over tensors of the learning rates a learned rule keeps in its state (NaN if none)."""
    rates = [float(torch.as_tensor(s["lr"]).mean()) for s in opt.state.values() if "lr" in s]
    return float(np.exp(np.mean(np.log(rates)))) if rates else math.nan


def measure(batch: OptimizeeBatch, rule: Any, steps: int, batch_size: int, seed: int) -> dict[str, Any]:
    """One problem: its best Adam rates by training and held-out loss, and the rule's rate and losses."""
    adam = [train(batch, lambda ps, lr=lr: torch.optim.Adam(ps, lr=float(lr)), steps, batch_size, seed) for lr in LRS]
    learned_train, _, opt = train(
        batch, lambda ps: am.optim.LearnedOptimizer(ps, artifact=rule), steps, batch_size, seed
    )
    return {
        "kind": kind_of(batch),
        "batch_size": batch_size,
        "best_rate_train": best_rate([a[0] for a in adam]),
        "best_rate_val": best_rate([a[1] for a in adam]),
        "rule_rate": rule_rate(opt),
        "rule_train_vs_best_adam": learned_train / max(min(a[0] for a in adam), 1e-12),
    }


def suite_rates(results: Path = RESULTS) -> dict[str, list[float]]:
    """The rates of "Adam (tuned)" per problem of each mini-batch suite whose results are at hand."""
    out = {}
    for suite, name in SUITE_FILES.items():
        if (results / name).exists():
            with open(results / name, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r["method"] == "Adam (tuned)"]
            out[suite] = [float(r["run"].split("=")[-1]) for r in rows]
    return out


def _median_rate(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.exp(np.median(np.log(finite)))) if finite else math.nan


def summary(rows: list[dict[str, Any]], suites: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Per kind (and all together) the median best rates and the rule's; per suite its tuned rates' median."""
    kinds = sorted({r["kind"] for r in rows})
    out: dict[str, dict[str, Any]] = {}
    for kind in [*kinds, "all"]:
        mine = [r for r in rows if kind in ("all", r["kind"])]
        out[kind] = {
            "problems": len(mine),
            **{k: _median_rate([r[k] for r in mine]) for k in ("best_rate_train", "best_rate_val", "rule_rate")},
            "rule_train_vs_best_adam": _median_rate([r["rule_train_vs_best_adam"] for r in mine]),
            "rule_diverged": sum(not math.isfinite(r["rule_train_vs_best_adam"]) for r in mine),
        }
    for suite, rates in suites.items():
        out[suite] = {"problems": len(rates), "best_rate_train": _median_rate(rates)}
    return out


def plot(rows: list[dict[str, Any]], suites: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {k: [r for r in rows if r["kind"] == k] for k in sorted({r["kind"] for r in rows})}
    labels = [*groups, *suites]
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(labels) + 1.8))
    jitter = np.random.default_rng(0)
    for y, mine in enumerate(groups.values()):
        for key, marker, color, dy in (("best_rate_train", "o", "C0", -0.15), ("best_rate_val", "s", "C2", 0.15)):
            ys = y + dy + jitter.uniform(-0.08, 0.08, len(mine))
            ax.scatter([r[key] for r in mine], ys, marker=marker, color=color, s=18, alpha=0.6)
        ax.scatter([r["rule_rate"] for r in mine], [y] * len(mine), marker="x", color="C3", s=30)
    for y, rates in enumerate(suites.values(), start=len(groups)):
        ax.scatter(rates, y + jitter.uniform(-0.15, 0.15, len(rates)), marker="o", color="C7", s=18)
    ax.scatter([], [], marker="o", color="C0", label="best Adam rate, training loss")
    ax.scatter([], [], marker="s", color="C2", label="best Adam rate, held-out loss")
    ax.scatter([], [], marker="x", color="C3", label="the learned rule's rate")
    ax.scatter([], [], marker="o", color="C7", label='"Adam (tuned)" on the suite')
    ax.set_xscale("log")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("Adam learning rate")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__, "4 problems of 20 steps")
    add_problem_options(p)
    p.add_argument("--problems", type=int, default=48, help="problems drawn (default 48)")
    p.add_argument("--steps", type=int, default=100, help="mini-batch steps per run (default 100, as meta-trained)")
    p.add_argument("--batch-size", type=int, nargs=2, default=(16, 64), metavar=("LOW", "HIGH"))
    p.add_argument("--rule", default="default-l2o", help="the learned optimizer (artifact name or path)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.problems < 1 or args.steps < 1 or not 1 <= args.batch_size[0] <= args.batch_size[1]:
        p.error("--problems and --steps must be at least 1, and --batch-size LOW HIGH must have 1 <= LOW <= HIGH")
    torch.set_num_threads(1)
    out = output_dir(args.out, args.quick)
    n, steps = (4, 20) if args.quick else (args.problems, args.steps)
    tasks, rule, rng = problems(args), am.load(args.rule), np.random.default_rng(args.seed)
    rows = []
    for i in range(n):
        batch = tasks.sample(1, rng)
        rows.append(measure(batch, rule, steps, int(rng.integers(args.batch_size[0], args.batch_size[1] + 1)), i))
    suites = suite_rates()
    result = summary(rows, suites)
    headers = ["kind", "problems", "best rate (train)", "best rate (held-out)", "rule's rate", "rule / best Adam",
               "rule diverged"]  # fmt: skip
    keys = ("problems", "best_rate_train", "best_rate_val", "rule_rate", "rule_train_vs_best_adam", "rule_diverged")
    print(f"\nMedian rates over {n} problems of {steps} steps (rule: {args.rule}); suites: tuned Adam's")
    print_table(headers, [[k, *(v.get(key, "") for key in keys)] for k, v in result.items()])
    write_csv(out / "l2o_rates.csv", list(rows[0]), [list(r.values()) for r in rows])
    write_json(out / "l2o_rates.json", {"steps": steps, "rule": args.rule, "kinds": result})
    plot(rows, suites, out / "l2o_rates.png")
    return result


if __name__ == "__main__":
    main()
