"""Warm-starting tuning on a new dataset: leave-one-task-out over the meta-dataset.

Each of the 38 tasks of ``_hpo_tasks`` is held out in turn; for it and each search space (MLP,
HistGradientBoosting), a study of 50 trials is run, 10 seeds each, with

- ``MetaLearnedSampler`` reading the store of ``build_meta_dataset.py`` as if the held-out task had never
  been seen: its own trials and every cross-evaluation of its best configurations are left out;
- ``TPESampler`` and ``RandomSampler`` (Optuna's defaults, no knowledge);
- ``WS-CMA-ES``: ``CmaEsSampler(source_trials=...)`` warm-started with the completed trials of the 5
  nearest tasks (the same meta-feature distance the sampler uses; categorical parameters, which CMA-ES
  cannot model, go to its independent sampler).

The normalized regret after t trials is (best loss in the first t trials - best loss ever seen on the
task) / (worst loss in the meta-dataset for the task - best loss ever seen), averaged over tasks, search
spaces and seeds. Cases are appended to ``<out>/runs/warmstart_hpo/cases.jsonl`` as they finish, so a
killed run resumes (``--fresh`` starts over), and copied every 20 cases to
``<out>/warmstart_hpo_cases.jsonl.gz``, which is kept with the results: a run on a new checkout starts
from it, so the 3,040 studies need not all run in one sitting. Each case records the version of its
sampler (Optuna's version; for MetaLearnedSampler, the version constant its module bumps whenever its
behaviour changes); cases of another version are run again. ``--quick``: 2 held-out tasks of a small
store, 2 seeds, 10 trials.

Writes ``warmstart_hpo.csv`` (mean regret and 95% interval per sampler, space and budget),
``warmstart_hpo.json`` (headline figures) and ``warmstart_hpo.png`` (regret curves).
"""

from __future__ import annotations

import gzip
import json
import math
import multiprocessing as mp
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _hpo_tasks import PARAMS, SPACES, TASK_NAMES, load_data, objective
from _report import mean_ci95, output_dir, parser, print_table, save_figure, write_csv, write_json

SAMPLERS = ("MetaLearnedSampler", "TPESampler", "RandomSampler", "WS-CMA-ES")
HELD_OUT = TASK_NAMES
QUICK_HELD_OUT = ["iris", "diabetes"]
BUDGETS = (1, 5, 10, 20, 50)
N_SOURCE_TASKS = 5

_STORE = {}


_SNAPSHOT: dict[str, tuple[list, list]] = {}


def _held_out_store(url: str, held_out: str):
    """The store without the held-out task: neither its trials nor other tasks' runs of its best configurations.

    Reads the store once per process (a read-only snapshot; the meta-dataset does not change during the run).
    """
    from build_meta_dataset import derived_from

    from automl_meta.store import ExperienceStore

    if url not in _SNAPSHOT:
        store = ExperienceStore(url)
        _SNAPSHOT[url] = (store.tasks(), store.evaluations())
        store.close()
    tasks, evaluations = _SNAPSHOT[url]

    class HeldOutStore(ExperienceStore):
        def tasks(self):
            return [t for t in tasks if t.name != held_out]

        def evaluations(self, task_id=None, *, states=None, study=None):
            ids = None if task_id is None else {task_id} if isinstance(task_id, int) else set(task_id)
            return [
                e
                for e in evaluations
                if (ids is None or e.task_id in ids)
                and (states is None or e.state in states)
                and (study is None or e.study == study)
                and not derived_from(e.study, held_out)
            ]

    return HeldOutStore(url)


def _description(name: str):
    from automl_meta.store import TaskDescription

    X, y, _ = load_data(name)
    return TaskDescription.from_data(X, y, name=name)


def _open_store(url: str, held_out: str | None = None):
    from automl_meta.store import ExperienceStore

    if (url, held_out) not in _STORE:
        _STORE[url, held_out] = ExperienceStore(url) if held_out is None else _held_out_store(url, held_out)
    return _STORE[url, held_out]


def nearest_source_trials(store, held_out, space: str, k: int = N_SOURCE_TASKS) -> list:
    """Completed trials of the k tasks nearest to the held-out one (meta-feature distance), as FrozenTrials."""
    import optuna

    from automl_meta.metafeatures import as_vector

    tasks = store.tasks()
    F = np.stack([as_vector(t.metafeatures) for t in tasks] + [as_vector(held_out.metafeatures)])
    scale = np.where(F.std(0) > 0, F.std(0), 1.0)
    dist = np.linalg.norm(F[:-1] / scale - F[-1] / scale, axis=1)
    names = set(PARAMS[space])
    trials = []
    for j in np.argsort(dist, kind="stable")[:k]:
        for e in store.evaluations(tasks[j].id, states=["COMPLETE"]):
            if set(e.params) == names and e.values:
                # CMA-ES models the numerical parameters only, and takes source trials of exactly that space.
                numeric = {
                    n: d
                    for n, d in e.distributions.items()
                    if not isinstance(d, optuna.distributions.CategoricalDistribution)
                }
                trials.append(
                    optuna.trial.create_trial(
                        params={n: e.params[n] for n in numeric}, distributions=numeric, value=e.values[0]
                    )
                )
    return trials


def make_sampler(name: str, seed: int, store_url: str, held_out, space: str):
    import optuna

    from automl_meta.integrations.optuna import MetaLearnedSampler

    store = _open_store(store_url, held_out.name)
    if name == "MetaLearnedSampler":
        return MetaLearnedSampler(store=store, task=held_out, seed=seed, knowledge=None)
    if name == "TPESampler":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "RandomSampler":
        return optuna.samplers.RandomSampler(seed=seed)
    source = nearest_source_trials(store, held_out, space)
    return optuna.samplers.CmaEsSampler(
        seed=seed,
        source_trials=source,
        warn_independent_sampling=False,
        independent_sampler=optuna.samplers.RandomSampler(seed=seed),
    )


def sampler_version(name: str) -> str:
    """What a case's result depends on besides the task and the seed: the version of its sampler."""
    import optuna

    if name != "MetaLearnedSampler":
        return f"optuna {optuna.__version__}"
    from automl_meta.integrations.optuna._sampler import _SAMPLER_VERSION

    return _SAMPLER_VERSION


def _write_snapshot(path: Path, cases: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt") as f:
        f.writelines(json.dumps(c) + "\n" for c in cases)
    tmp.replace(path)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_case(case: tuple[str, str, str, int, str, int]) -> dict:
    task_name, space, sampler_name, seed, store_url, trials = case
    import logging
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("automl_meta").setLevel(logging.ERROR)
    held_out = _description(task_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = make_sampler(sampler_name, seed, store_url, held_out, space)
        study = optuna.create_study(sampler=sampler)
        t0 = time.perf_counter()
        study.optimize(objective(task_name, space), n_trials=trials)
    return {
        "task": task_name,
        "space": space,
        "sampler": sampler_name,
        "seed": seed,
        "values": [t.value for t in study.trials],
        "seconds": time.perf_counter() - t0,
        "version": sampler_version(sampler_name),
    }


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def regret_curves(cases: list[dict], store_url: str) -> dict:
    """Normalized regret per case and trial count.

    The best loss is the lowest ever seen on the task (tuning, cross-evaluations and every case); the worst
    is the highest of the task's own tuning study, whose first trials are random.
    """
    store = _open_store(store_url)
    names = {t.id: t.name for t in store.tasks()}
    meta: dict[tuple[str, str], list[float]] = {}
    best_seen: dict[tuple[str, str], float] = {}
    for e in store.evaluations(states=["COMPLETE"]):
        if not e.values:
            continue
        key = (names[e.task_id], next(s for s in SPACES if set(e.params) == set(PARAMS[s])))
        best_seen[key] = min(best_seen.get(key, math.inf), e.values[0])
        if e.study == f"meta-{key[0]}-{key[1]}":
            meta.setdefault(key, []).append(e.values[0])
    for c in cases:
        key = (c["task"], c["space"])
        best_seen[key] = min(best_seen[key], min(c["values"]))
    out = []
    for c in cases:
        key = (c["task"], c["space"])
        lo, hi = best_seen[key], max(meta[key])
        best = np.minimum.accumulate(np.asarray(c["values"], dtype=float))
        out.append({**c, "regret": np.clip((best - lo) / max(hi - lo, 1e-12), 0, 1)})
    return out


def plot(path: Path, curves: list[dict], trials: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    for ax, space in zip(axes, ("all",) + SPACES):
        for name in SAMPLERS:
            sel = [c["regret"] for c in curves if c["sampler"] == name and space in ("all", c["space"])]
            if not sel:
                continue
            mean = np.mean(np.stack(sel), 0)
            ax.plot(np.arange(1, trials + 1), mean, label=name, lw=2.5 if name == "MetaLearnedSampler" else 1.2)
        ax.set(xscale="log", yscale="log", xlabel="trials", title=f"search space: {space}")
    axes[0].set_ylabel("mean normalized regret")
    axes[0].legend()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__, "2 held-out tasks of a small store, 2 seeds, 10 trials (seconds)")
    p.add_argument("--store", help="store URL (default: the one build_meta_dataset.py writes under --out)")
    p.add_argument("--seeds", type=int)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--fresh", action="store_true", help="discard the cases of an earlier run")
    p.add_argument(
        "--samplers",
        default=",".join(SAMPLERS),
        help="run only these samplers now (comma-separated; the report covers all that have run)",
    )
    args = p.parse_args(argv)
    out = output_dir(args.out, args.quick)
    import build_meta_dataset as bmd

    store_url = args.store or bmd.store_url(out)
    if args.quick and not args.store:
        bmd.build(out, bmd.QUICK_TASKS, 12, 6, 1)  # resumes: a no-op when the quick store exists
    held = QUICK_HELD_OUT if args.quick else HELD_OUT
    seeds = args.seeds or (2 if args.quick else 10)
    budgets = (1, 5, 10) if args.quick else BUDGETS
    trials = max(budgets)
    runs = out / "runs" / "warmstart_hpo"
    runs.mkdir(parents=True, exist_ok=True)
    log, snapshot = runs / "cases.jsonl", out / "warmstart_hpo_cases.jsonl.gz"
    if args.fresh:
        log.unlink(missing_ok=True)
        snapshot.unlink(missing_ok=True)
    if not log.exists() and snapshot.exists():  # a new checkout: start from the cases kept with the results
        with gzip.open(snapshot, "rt") as f:
            log.write_text(f.read())
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    current = {n: sampler_version(n) for n in SAMPLERS}
    kept: list[dict] = []
    stale: list[dict] = []
    for c in done:
        (kept if c.get("version") == current[c["sampler"]] else stale).append(c)
    if stale:
        print(
            f"{len(stale)} cases ran another version of {', '.join(sorted({c['sampler'] for c in stale}))}: "
            "they run again",
            flush=True,
        )
        done = kept
        log.write_text("".join(json.dumps(c) + "\n" for c in done))
    have = {(c["task"], c["space"], c["sampler"], c["seed"]) for c in done}
    unknown = set(args.samplers.split(",")) - set(SAMPLERS)
    if unknown:
        p.error(f"unknown samplers {sorted(unknown)}; choose from {', '.join(SAMPLERS)}")
    todo = [
        (t, s, n, seed, store_url, trials)
        for t in held
        for s in SPACES
        for seed in range(seeds)
        for n in SAMPLERS
        if n in args.samplers.split(",") and (t, s, n, seed) not in have
    ]
    print(f"{len(done)} cases done, {len(todo)} to run", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # a stopped run (kill, a session's end) keeps its cases too
    t0 = time.perf_counter()
    with open(log, "a") as f:
        if args.jobs > 1:
            pool = mp.get_context("spawn").Pool(args.jobs, initializer=_init_worker)
            results = pool.imap_unordered(run_case, todo)
        else:
            _init_worker()
            pool, results = None, map(run_case, todo)
        try:
            for i, result in enumerate(results, 1):
                f.write(json.dumps(result) + "\n")
                f.flush()
                done.append(result)
                if i % 20 == 0:
                    print(f"  {i}/{len(todo)} cases, {time.perf_counter() - t0:.0f} s", flush=True)
                    _write_snapshot(snapshot, done)
        finally:  # stopped (Ctrl-C, SIGTERM) or not, the kept cases include every finished one
            _write_snapshot(snapshot, done)
            if pool is not None:
                pool.terminate()
                pool.join()
    done = [c for c in done if c["task"] in held and c["seed"] < seeds and len(c["values"]) == trials]
    missing = {n: len(held) * len(SPACES) * seeds - sum(c["sampler"] == n for c in done) for n in SAMPLERS}
    if any(missing.values()):
        print(
            "Not reported yet, cases still to run: "
            + ", ".join(f"{n} {k}" for n, k in missing.items() if k)
            + " (run with --samplers to add them)"
        )
        return {"missing_cases": missing}
    curves = regret_curves(done, store_url)
    headers = ["sampler", "space"] + [f"regret@{b}" for b in budgets] + [f"ci95@{b}" for b in budgets]
    rows, regret, by_space = [], {}, {}
    for name in SAMPLERS:
        for space in ("all",) + SPACES:
            sel = [c["regret"] for c in curves if c["sampler"] == name and space in ("all", c["space"])]
            stats = [mean_ci95([r[b - 1] for r in sel]) for b in budgets]
            rows.append([name, space] + [m for m, _ in stats] + [h for _, h in stats])
            figures = {str(b): round(m, 5) for b, (m, _) in zip(budgets, stats)}
            if space == "all":
                regret[name] = figures
            else:
                by_space.setdefault(space, {})[name] = figures
    print_table(headers[: 2 + len(budgets)], [r[: 2 + len(budgets)] for r in rows])
    write_csv(out / "warmstart_hpo.csv", headers, rows)
    summary = {
        "regret": regret,
        "regret_by_space": by_space,
        "held_out_tasks": len(held),
        "seeds": seeds,
        "search_spaces": list(SPACES),
        "trials": trials,
        "quick": args.quick,
        "cases": len(curves),
    }
    # How many trials each baseline needs, on average, to reach the sampler's mean regret after b trials.
    mean_curve = {n: np.mean([c["regret"] for c in curves if c["sampler"] == n], 0) for n in SAMPLERS}
    summary["baseline_trials_to_match"] = {
        n: {
            str(b): (
                int(np.argmax(mean_curve[n] <= mean_curve["MetaLearnedSampler"][b - 1])) + 1
                if (mean_curve[n] <= mean_curve["MetaLearnedSampler"][b - 1]).any()
                else None
            )
            for b in budgets
        }
        for n in SAMPLERS
        if n != "MetaLearnedSampler"
    }
    if not args.quick:
        m, t, w = regret["MetaLearnedSampler"], regret["TPESampler"], regret["WS-CMA-ES"]
        summary["acceptance"] = {"meta@10 <= tpe@50": m["10"] <= t["50"], "meta@10 < ws-cma-es@10": m["10"] < w["10"]}
        print(
            f"\nMetaLearnedSampler after 10 trials: {m['10']:.4f}; TPE after 50: {t['50']:.4f}; "
            f"WS-CMA-ES after 10: {w['10']:.4f}"
        )
    write_json(out / "warmstart_hpo.json", summary)
    plot(out / "warmstart_hpo.png", curves, trials)
    return summary


if __name__ == "__main__":
    main()
