"""Sampler overhead: time spent in MetaLearnedSampler per trial of a 1,000-trial study, against TPE.

The objective is cheap (microseconds): a smooth synthetic function of the six parameters of
``automl_meta.spaces.SPACES["hist_gradient_boosting"]`` (a bowl in the unit cube, log scale where the
parameter is logarithmic, with a ripple), so the time of a trial is the sampler's. Each sampler's methods
(``before_trial``, ``infer_relative_search_space``, ``sample_relative``, ``sample_independent``,
``after_trial``) are wrapped with timers; a trial's overhead is their sum (MetaLearnedSampler's includes its
base sampler's). Three studies run in one process, taking turns (50 trials each, so that all meet the same
load on a shared machine), sampled by:

- ``MetaLearnedSampler(task=(X, y), seed=0, store=<fresh SQLite store>)`` with its defaults: it reads the
  bundled knowledge file; its first trial also describes the task (meta-features with landmarkers), loads the
  knowledge and fits every past task's Gaussian process; the portfolio (5 trials) and the transfer phase
  (``n_transfer=100`` trials) come next, then TPE;
- the same with ``n_transfer`` as large as the study (transfer all the way): the cost of a transfer trial
  as the study grows (the knowledge file and its processes are loaded by then: its first trial is cheaper);
- ``TPESampler(seed=0)``, the reference.

The task is scikit-learn's breast cancer data. The acceptance is a median of at most 50 ms and a maximum
of at most 1 s per trial for MetaLearnedSampler with its defaults. On a shared machine (a background build
on the same cores) all timings are inflated; the ratio to TPE, measured in the same run, is the steadier
figure. BLAS's worker threads, which wait for work by spinning, slow every other thread of a busy machine:
``--blas-threads 1`` shows by how much.

Run ``python studies/sampler_overhead.py`` (1,000 trials per sampler, a few minutes) or with ``--quick``
(150 trials). Writes ``sampler_overhead.csv`` (one row per sampler and trial), ``sampler_overhead.json``
(the summary) and ``sampler_overhead.png`` (overhead per trial, log scale); with ``--blas-threads``,
``sampler_overhead-blas<N>.*`` instead.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, TPESampler
from threadpoolctl import threadpool_info, threadpool_limits  # type: ignore[import-untyped]  # scikit-learn's dependency

sys.path.insert(0, str(Path(__file__).parent))
from _report import output_dir, parser, print_table, save_figure, write_csv, write_json

from automl_meta.integrations.optuna import MetaLearnedSampler
from automl_meta.spaces import SPACES

SPACE = SPACES["hist_gradient_boosting"]
MEDIAN_MS, MAX_MS = 50.0, 1000.0  # the acceptance, for MetaLearnedSampler with its defaults
DEFAULTS = "MetaLearnedSampler"
TRANSFER_ALL = "MetaLearnedSampler(n_transfer=all)"
TPE = "TPESampler"
BLOCK = 50  # trials of one study before the next takes its turn


class TimedSampler(BaseSampler):
    """Delegates to ``sampler`` and adds the time of every call to the trial's overhead (``seconds``)."""

    def __init__(self, sampler: BaseSampler) -> None:
        self.sampler = sampler
        self.seconds: defaultdict[int, float] = defaultdict(float)

    def _timed(self, number: int, method: str, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return getattr(self.sampler, method)(*args)
        finally:
            self.seconds[number] += time.perf_counter() - start

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, BaseDistribution]:
        return self._timed(trial.number, "infer_relative_search_space", study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._timed(trial.number, "sample_relative", study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, name: str, distribution: BaseDistribution) -> Any:
        return self._timed(trial.number, "sample_independent", study, trial, name, distribution)

    def before_trial(self, study: Any, trial: Any) -> None:
        self._timed(trial.number, "before_trial", study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._timed(trial.number, "after_trial", study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()


def _unit(dist: BaseDistribution, value: Any) -> float:
    """A value's place in [0, 1] of its range (on the log scale for logarithmic parameters)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices.index(value) / max(len(dist.choices) - 1, 1)
    low, high, v = float(dist.low), float(dist.high), float(value)  # type: ignore[attr-defined]
    if dist.log:  # type: ignore[attr-defined]
        low, high, v = math.log(low), math.log(high), math.log(v)
    return (v - low) / (high - low)


def objective(trial: optuna.Trial) -> float:
    """A smooth bowl with a ripple over the space's unit cube; its minimum is near 0.3, 0.4, ... per parameter."""
    params = SPACE.suggest(trial)
    dists = SPACE.distributions()
    u = np.array([_unit(dists[name], value) for name, value in params.items()])
    centre = 0.3 + 0.4 * np.arange(len(u)) / max(len(u) - 1, 1)
    return float(((u - centre) ** 2).sum() + 0.05 * np.sin(9.0 * u).sum())


def run(samplers: dict[str, BaseSampler], n_trials: int) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per sampler, the overhead of each trial (seconds) and the best value. The studies take turns, ``BLOCK``
    trials (ask and tell) each, so that all meet the same load on a shared machine; blocks, not single
    trials, so that BLAS threads one sampler leaves spinning seldom slow down the next."""
    timed = {name: TimedSampler(sampler) for name, sampler in samplers.items()}
    studies = {name: optuna.create_study(sampler=t) for name, t in timed.items()}
    start = time.perf_counter()
    for first in range(0, n_trials, BLOCK):
        for study in studies.values():
            for _ in range(first, min(first + BLOCK, n_trials)):
                trial = study.ask()
                study.tell(trial, objective(trial))
        print(f"{min(first + BLOCK, n_trials)} trials of each sampler, {time.perf_counter() - start:.0f} s", flush=True)
    seconds = {name: np.array([t.seconds[i] for i in range(n_trials)]) for name, t in timed.items()}
    return seconds, {name: study.best_value for name, study in studies.items()}


def summarise(seconds: np.ndarray, tpe_total: float) -> dict[str, float]:
    ms = seconds * 1000
    return {
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "max_ms": float(ms.max()),
        "slowest_trial": int(ms.argmax()),
        "total_s": float(seconds.sum()),
        "ratio_to_tpe": float(seconds.sum() / tpe_total),
    }


def phases(seconds: np.ndarray, n_portfolio: int = 5, n_transfer: int = 100) -> dict[str, dict[str, float]]:
    """MetaLearnedSampler's overhead per phase: first trial, rest of the portfolio, transfer, TPE after it."""
    spans = {
        "first trial": (0, 1),
        "portfolio": (1, n_portfolio),
        "transfer": (n_portfolio, n_portfolio + n_transfer),
        "after hand-over": (n_portfolio + n_transfer, len(seconds)),
    }
    out = {}
    for label, (a, b) in spans.items():
        part = seconds[a:b] * 1000
        if len(part):
            out[label] = {"trials": len(part), "median_ms": float(np.median(part)), "max_ms": float(part.max())}
    return out


def plot(path: Path, curves: dict[str, np.ndarray], note: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for name, seconds in curves.items():
        ax.plot(np.arange(len(seconds)), seconds * 1000, lw=0.8, label=name)
    ax.axhline(MEDIAN_MS, color="grey", ls="--", lw=0.8, label=f"{MEDIAN_MS:.0f} ms (median bound)")
    ax.axhline(MAX_MS, color="grey", ls=":", lw=0.8, label=f"{MAX_MS:.0f} ms (maximum bound)")
    ax.set(yscale="log", xlabel="trial number", ylabel="sampler overhead per trial (ms)")
    ax.set_title(note, fontsize=9)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def measure(n_trials: int, blas_threads: int | None) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, Any]]:
    """Run the three studies; per sampler the overhead of each trial and the best value, and the conditions."""
    from sklearn.datasets import load_breast_cancer

    task = load_breast_cancer(return_X_y=True)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        url = "sqlite:///" + os.path.join(tmp, "experience-{}.db")  # fresh, empty stores
        samplers: dict[str, BaseSampler] = {
            DEFAULTS: MetaLearnedSampler(task=task, seed=0, store=url.format(1)),
            TRANSFER_ALL: MetaLearnedSampler(task=task, seed=0, store=url.format(2), n_transfer=n_trials),
            TPE: TPESampler(seed=0),
        }
        with threadpool_limits(limits=blas_threads, user_api="blas"):  # None: no limit
            curves, best = run(samplers, n_trials)
    blas = blas_threads or max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    conditions = {
        "cores": os.cpu_count(),
        "blas_threads": blas,
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
    }
    return curves, best, conditions


def report(curves: dict[str, np.ndarray], best: dict[str, float], note: str) -> dict[str, Any]:
    """Print the tables and the verdict; return the summary."""
    tpe_total = float(curves[TPE].sum())
    summary = {name: summarise(seconds, tpe_total) for name, seconds in curves.items()}
    headers = ["sampler", "median ms", "p95 ms", "max ms", "slowest trial", "total s", "total / TPE", "best value"]
    rows = [
        [n, s["median_ms"], s["p95_ms"], s["max_ms"], s["slowest_trial"], s["total_s"], s["ratio_to_tpe"], best[n]]
        for n, s in summary.items()
    ]
    print(f"\nSampler overhead per trial, cheap objective over {SPACE.name}; {note}")
    print("Timings are inflated by other work on the machine; the ratio to TPE is measured in the same run.")
    print_table(headers, rows)
    by_phase = phases(curves[DEFAULTS])
    print(f"\n{DEFAULTS} (defaults) by phase:")
    print_table(
        ["phase", "trials", "median ms", "max ms"],
        [[k, v["trials"], v["median_ms"], v["max_ms"]] for k, v in by_phase.items()],
    )
    early, tail = curves[TRANSFER_ALL][5:105] * 1000, curves[TRANSFER_ALL][-100:] * 1000
    print(
        f"\n{TRANSFER_ALL}: median {statistics.median(early):.0f} ms over trials 5-104, "
        f"{statistics.median(tail):.0f} ms over the last 100 trials"
    )
    mine = summary[DEFAULTS]
    ok = mine["median_ms"] <= MEDIAN_MS and mine["max_ms"] <= MAX_MS
    print(
        f"\nAcceptance (MetaLearnedSampler with its defaults: median <= {MEDIAN_MS:.0f} ms, max <= {MAX_MS:.0f} ms "
        f"per trial): {'HOLDS' if ok else 'FAILS'} (median {mine['median_ms']:.1f} ms, "
        f"max {mine['max_ms']:.0f} ms at trial {mine['slowest_trial']})"
    )
    return {
        "samplers": summary,
        "defaults_by_phase": by_phase,
        "transfer_all_median_ms": {"trials_5_104": statistics.median(early), "last_100": statistics.median(tail)},
        "acceptance": {"median_ms_at_most": MEDIAN_MS, "max_ms_at_most": MAX_MS, "holds": ok},
    }


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__, "150 trials per sampler (a minute), for smoke tests")
    p.add_argument("--trials", type=int, help="trials per sampler (default 1000, or 150 with --quick)")
    p.add_argument("--blas-threads", type=int, help="limit BLAS to this many threads (default: as configured)")
    args = p.parse_args(argv)
    out = output_dir(args.out, args.quick)
    n_trials = args.trials or (150 if args.quick else 1000)
    stem = "sampler_overhead" + (f"-blas{args.blas_threads}" if args.blas_threads else "")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    curves, best, conditions = measure(n_trials, args.blas_threads)
    load = conditions["load_average"]
    note = (
        f"{n_trials} trials, {conditions['cores']} cores shared (load {load['before']:.1f} before, "
        f"{load['after']:.1f} after), {conditions['blas_threads']} BLAS threads"
    )
    result = {"trials": n_trials, "quick": bool(args.quick), **conditions, **report(curves, best, note)}
    write_csv(
        out / f"{stem}.csv",
        ["sampler", "trial", "overhead_ms"],
        [[n, i, round(float(s) * 1000, 3)] for n, seconds in curves.items() for i, s in enumerate(seconds)],
    )
    write_json(out / f"{stem}.json", result)
    plot(out / f"{stem}.png", curves, f"Sampler overhead per trial, {SPACE.name}\n{note}")
    print(f"wrote {out / stem}.csv, .json and .png")
    return result


if __name__ == "__main__":
    main()
