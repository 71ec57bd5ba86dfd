"""A development aid for the warm-starting sampler: leave-one-task-out on the knowledge file, in minutes.

Not evidence (the evidence is ``warmstart_real.py``, on tasks outside the knowledge file): this study
never touches the evaluation tasks, so a change to ``MetaLearnedSampler`` can be tried here without
tuning it to them. For a meta-train task T of a knowledge block (a search space and task type), the
sampler is given T's meta-features with T excluded (``exclude_tasks``), and a study runs on a lookup
objective: the loss T measured at the configuration it ran that is nearest to the trial's (Euclidean in
the unit cube; log scale where the range is; categories one-hot). T ran 24 configurations (the shared
design and 8 TPE trials; with a knowledge file that has the cross-evaluation round, 8 more), so the
landscape is a step function whose best step lies where T's own TPE search went; the objective is
deterministic, so no sampler gains from repeating a lucky draw. The cross-evaluated configurations were
chosen from every task's best, T's included, and stay in the file when T is excluded: with them the
regret here is optimistic, a reason more to take evidence from ``warmstart_real.py`` alone. The
regret after t trials is (best loss of the first t - T's best) / (T's worst - T's best).

``--objective real`` scores every trial on T itself instead (the knowledge build's cross-validated loss,
at its row cap): the landscape between T's configurations is then the real one, plateaus and narrow
valleys included, at the cost of real fits (``--jobs``; cases are kept in ``<out>/runs/sampler_loo``, per
variant, knowledge file and sampler version, and a killed run resumes). A trial that beats T's best has
regret 0; a failed fit counts as T's worst. ``--meta-trials N`` runs the sampler's studies longer than 10
trials (kept apart from the default's cases), to try changes that act late in a study; past the 24 to 32
configurations T ran, more cases reach regret 0, so what remains is the tasks a search does not solve.
``--knowledge-share S`` lets the sampler read only a share S of the other tasks (a fixed subset, by a hash
of each task's name; a smaller share's subset lies inside a larger one's), to measure how much the
knowledge's size matters. The cross round's configurations, chosen from every task's bests, stay.
``--rescore`` (with ``--objective real``) also scores the configuration each study would return after 5 and
10 trials on other folds and estimator seeds (``_sampler_loo_rescore``): on the real objective a change can
gain regret by stepping around lucky trials; the re-scored regret tells it from one that finds better
configurations.

    python studies/sampler_loo.py                      # 8 tasks per block, all samplers: about 10 CPU minutes
    python studies/sampler_loo.py --samplers MetaLearnedSampler --variant '{"n_portfolio": 3}'
    python studies/sampler_loo.py --quick              # 1 task of 3 blocks (seconds)
    python studies/sampler_loo.py --objective real --samplers MetaLearnedSampler --jobs 2   # about 4 minutes
    python studies/sampler_loo.py --objective real --samplers MetaLearnedSampler --jobs 2 --meta-trials 50
    python studies/sampler_loo.py --objective real --samplers MetaLearnedSampler --jobs 2 --knowledge-share 0.5
    python studies/sampler_loo.py --objective real --samplers MetaLearnedSampler --jobs 2 --rescore

Writes ``sampler_loo.csv`` (mean regret per sampler, block and budget), ``sampler_loo.json`` (the
means over blocks, the re-scored means with ``--rescore``, and the run's settings) and ``sampler_loo.png``
(regret curves).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _sampler_loo_rescore as rescore
from _parallel import job_cache, keep, run_each
from _report import output_dir, parser, print_table, save_figure, write_csv, write_json
from _warmstart_real_cases import config_seed

from automl_meta.knowledge._cross import unit  # the unit cube of the knowledge build's medoids

TRIALS = {"MetaLearnedSampler": 10, "TPESampler": 50, "RandomSampler": 20}
BUDGETS = (1, 5, 10, 20, 50)
PREFIX = "est__"  # a Pipeline step, as a user's study has


def left_out(kb: Any, t: int, share: float) -> list[str]:
    """Names and fingerprints of the tasks the sampler may not read for held-out task ``t``: ``t`` itself
    and, with ``share`` < 1, every task whose place (0 to 999, a hash of its name) is at least 1000 x ``share``."""
    out = []
    for i, task in enumerate(kb.tasks):
        place = int(hashlib.sha256(f"keep:{task['name']}".encode()).hexdigest(), 16) % 1000  # 0 to 999, by name
        if i == t or place >= share * 1000:
            out += [task["name"], task["fingerprint"]]
    return out


def make_sampler(name: str, kb: Any, t: int, seed: int, store: str, variant: dict[str, Any], share: float = 1.0) -> Any:
    import optuna

    from automl_meta.integrations.optuna import MetaLearnedSampler
    from automl_meta.metafeatures import NAMES

    if name == "TPESampler":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "RandomSampler":
        return optuna.samplers.RandomSampler(seed=seed)
    features = {n: float(v) for n, v in zip(NAMES, kb.metafeatures[t])}
    return MetaLearnedSampler(task=features, store=store, seed=seed, exclude_tasks=left_out(kb, t, share), **variant)


def _real_tasks(max_rows: int) -> dict[str, Any]:
    """The knowledge build's meta-train tasks by name, at its row cap."""
    from automl_meta.corpus import load_corpus

    return {t.name: t for t in load_corpus("meta-train", max_rows=max_rows)}


def trial_losses(
    kb: Any,
    block: Any,
    t: int,
    name: str,
    seed: int,
    variant: dict[str, Any],
    real: Any = None,
    trials: int = 0,
    share: float = 1.0,
    configs: list[dict[str, Any]] | None = None,
) -> list[float]:
    """The loss of each trial of one sampler's study on held-out task ``t`` (a failed fit counts as T's worst);
    ``trials`` of them (0: the sampler's ``TRIALS``), the sampler reading a ``share`` of the other tasks. Each
    trial's configuration is appended to ``configs`` when given."""
    import optuna

    from automl_meta.knowledge._objective import cross_validated_loss
    from automl_meta.spaces import SPACES

    rows, losses = block.runs()[t]
    U = np.stack([unit(block.distributions, block.config(i)) for i in rows])
    space, values = SPACES[block.space], []
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:  # an empty store
        sampler = make_sampler(name, kb, t, seed, f"sqlite:///{tmp}/experience.db", variant, share)
        study = optuna.create_study(sampler=sampler)
        for _ in range(trials or TRIALS[name]):
            trial = study.ask()
            config = {n[len(PREFIX) :]: v for n, v in space.suggest(trial, PREFIX).items()}
            if configs is not None:
                configs.append(config)
            if real is None:
                loss = float(losses[int(np.argmin(((U - unit(block.distributions, config)) ** 2).sum(1)))])
            else:  # the estimators' seeds (NumPy's global state) fixed per configuration: repeatable runs
                np.random.seed(config_seed(config))
                loss = cross_validated_loss(block.space, block.task_type, config, real.X, real.y)
            ok = math.isfinite(loss)
            values.append(loss if ok else float(losses.max()))
            study.tell(trial, loss if ok else None, state=None if ok else optuna.trial.TrialState.FAIL)
    return values


def regret(block: Any, t: int, values: list[float]) -> np.ndarray:
    """The normalised regret after each trial, against the losses task ``t`` stored in ``block``."""
    losses = block.runs()[t][1]
    spread = float(losses.max() - losses.min())
    best = np.minimum.accumulate(values)
    return np.clip((best - losses.min()) / spread, 0.0, 1.0) if spread > 0 else np.zeros_like(best)


def held_out_tasks(block: Any, n: int) -> list[int]:
    """``n`` of the block's tasks, every k-th by index (a fixed rule: no choice by results)."""
    ids = sorted(block.runs())
    return ids[:: max(1, len(ids) // n)][:n]


def report(
    out: Path,
    curves: dict[tuple[str, str, str], np.ndarray],
    settings: dict[str, Any],
    rescored: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Print and write the mean regret per sampler, block and budget, the means over blocks, and the mean
    re-scored regrets (``rescored``: per sampler and budget, over all cases) when given."""
    import matplotlib.pyplot as plt

    rows = [
        [name, space, task_type, b, round(float(c[b - 1]), 4)]
        for (name, space, task_type), c in sorted(curves.items())
        for b in BUDGETS
        if b <= len(c)
    ]
    headers = ["sampler", "space", "task_type", "trials", "mean regret"]
    print_table(headers, rows)
    write_csv(out / "sampler_loo.csv", headers, rows)
    overall = {
        name: np.mean([c for (n, _, _), c in curves.items() if n == name], 0) for name in sorted({k[0] for k in curves})
    }
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, c in overall.items():
        ax.plot(np.arange(1, len(c) + 1), c, label=name)
    title = f"Leave-one-task-out ({settings['objective']} objective)"
    ax.set(xlabel="trials", ylabel="mean normalised regret", yscale="log", title=title)
    ax.legend()
    save_figure(fig, out / "sampler_loo.png")
    summary = {
        "settings": settings,
        "mean_regret": {n: {str(b): float(c[b - 1]) for b in BUDGETS if b <= len(c)} for n, c in overall.items()},
    }
    for name, c in summary["mean_regret"].items():
        print(f"{name}: " + ", ".join(f"@{b} {v:.4f}" for b, v in c.items()))
    for name, c in (rescored or {}).items():
        print(f"{name}, re-scored: " + ", ".join(f"@{b} {v:.4f}" for b, v in c.items()))
    if rescored:
        summary["rescored"] = rescored
    write_json(out / "sampler_loo.json", summary)
    return summary


_REAL: dict[str, Any] = {}  # what the real-objective jobs share (set before the workers fork)


def _case_path(c: tuple[int, str, int]) -> Path:
    block = _REAL["blocks"][c[0]]
    return _REAL["cache"] / f"{block.space}-{block.task_type}-{c[1]}-{c[2]}-{_REAL['seed']}.json"


def _real_job(c: tuple[int, str, int]) -> None:
    """One real-objective case, kept as a file (one thread: ``--jobs`` workers share the cores)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # scikit-learn's dependency

    threadpool_limits(1)
    kb, block = _REAL["kb"], _REAL["blocks"][c[0]]
    real = _REAL["tasks"][kb.tasks[c[2]]["name"]]
    length = _length(c[1], _REAL["meta_trials"])
    configs: list[dict[str, Any]] = []
    values = trial_losses(kb, block, c[2], c[1], _REAL["seed"], _REAL["variant"], real, length, _REAL["share"], configs)
    # the raw losses too: runs against another knowledge file (other stored losses of T) stay comparable
    keep(_case_path(c), {"regret": regret(block, c[2], values).tolist(), "losses": values, "configs": configs})


def _rescore_job(c: tuple[int, str, int]) -> None:
    """Re-score one kept real-objective case (``--rescore``)."""
    kb, block = _REAL["kb"], _REAL["blocks"][c[0]]
    rescore.rescore_case(_case_path(c), block, c[2], _REAL["tasks"][kb.tasks[c[2]]["name"]])


def _length(name: str, meta_trials: int) -> int:
    """Trials of one sampler's studies: ``meta_trials`` (``--meta-trials``) for MetaLearnedSampler, else ``TRIALS``."""
    return meta_trials if name == "MetaLearnedSampler" else TRIALS[name]


def _cases_key(
    kb: Any, variant: dict[str, Any], meta_trials: int = TRIALS["MetaLearnedSampler"], share: float = 1.0
) -> str:
    """The folder of kept cases: one per variant, knowledge file, sampler version and, when not the default,
    MetaLearnedSampler's number of trials and the knowledge's share (any other is a new run)."""
    from automl_meta.integrations.optuna._sampler import _SAMPLER_VERSION

    key: dict[str, Any] = {"variant": variant, "knowledge": kb.manifest["sha256"], "sampler": _SAMPLER_VERSION}
    if meta_trials != TRIALS["MetaLearnedSampler"]:  # the default's folders keep their names
        key["meta_trials"] = meta_trials
    if share != 1.0:
        key["share"] = share
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def _curves(args: Any, kb: Any, blocks: list, names: list[str], n: int, variant: dict[str, Any]) -> tuple[dict, dict]:
    """Mean regret curve per (sampler, space, task type), and with ``--rescore`` the mean re-scored regrets per
    sampler and budget; real-objective cases are kept as they finish."""
    cases = [(b, name, t) for b, block in enumerate(blocks) for name in names for t in held_out_tasks(block, n)]
    meta, share, rescored = args.meta_trials, args.knowledge_share, {}
    if args.objective == "lookup":
        runs = {}
        for b, name, t in cases:
            losses = trial_losses(kb, blocks[b], t, name, args.seed, variant, None, _length(name, meta), share)
            runs[b, name, t] = regret(blocks[b], t, losses)
    else:
        cache = job_cache(output_dir(args.out, args.quick), "sampler_loo", args.fresh)
        cache = cache / _cases_key(kb, variant, meta, share)
        cache.mkdir(exist_ok=True)
        tasks = _real_tasks(kb.manifest["settings"]["max_rows"])
        _REAL.update(kb=kb, blocks=blocks, tasks=tasks, cache=cache, seed=args.seed, variant=variant)
        _REAL.update(meta_trials=meta, share=share)
        run_each(_real_job, [c for c in cases if not _case_path(c).exists()], args.jobs)
        runs = {c: np.array(json.loads(_case_path(c).read_text())["regret"]) for c in cases}
        if args.rescore:
            run_each(_rescore_job, cases, args.jobs)
            rescored = rescore.mean_rescored({c: _case_path(c) for c in cases})
    curves = {}
    for b, block in enumerate(blocks):
        for name in names:
            curves[name, block.space, block.task_type] = np.mean([r for c, r in runs.items() if c[:2] == (b, name)], 0)
    return curves, rescored


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import optuna

    from automl_meta import knowledge

    p = parser(__doc__, "1 held-out task of 3 blocks")
    p.add_argument("--tasks-per-block", type=int, default=8, help="held-out tasks per block (default 8)")
    p.add_argument("--samplers", default=",".join(TRIALS), help=f"comma-separated, of {', '.join(TRIALS)}")
    p.add_argument("--variant", default="{}", help="JSON of MetaLearnedSampler arguments to try")
    p.add_argument(
        "--meta-trials",
        type=int,
        default=TRIALS["MetaLearnedSampler"],
        help=f"MetaLearnedSampler's trials per case (default {TRIALS['MetaLearnedSampler']}; more for longer studies)",
    )
    p.add_argument(
        "--knowledge-share",
        type=float,
        default=1.0,
        help="share of the other tasks MetaLearnedSampler may read (a fixed subset by name; default 1: all)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--objective", choices=("lookup", "real"), default="lookup", help="see above (default lookup)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for --objective real (default 1)")
    p.add_argument("--fresh", action="store_true", help="with --objective real: drop the kept cases first")
    p.add_argument("--rescore", action="store_true", help="with --objective real: re-score the returned configurations")
    args = p.parse_args(argv)
    names = args.samplers.split(",")
    if unknown := set(names) - set(TRIALS):
        p.error(f"unknown samplers {sorted(unknown)}; choose from {', '.join(TRIALS)}")
    if args.meta_trials < 1:
        p.error(f"--meta-trials must be at least 1, got {args.meta_trials}")
    if args.rescore and args.objective != "real":
        p.error("--rescore needs --objective real (the lookup objective has no noise to re-score)")
    if not 0.0 < args.knowledge_share <= 1.0:
        p.error(f"--knowledge-share must be in (0, 1], got {args.knowledge_share}")
    variant = json.loads(args.variant)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("automl_meta").setLevel(logging.ERROR)
    kb = knowledge.load()
    blocks = kb.blocks[:3] if args.quick else kb.blocks
    n = 1 if args.quick else args.tasks_per_block
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental-feature warnings
        curves, rescored = _curves(args, kb, blocks, names, n, variant)
    settings = {
        "tasks_per_block": n,
        "variant": variant,
        "meta_trials": args.meta_trials,
        "knowledge_share": args.knowledge_share,
        "seed": args.seed,
        "objective": args.objective,
        "knowledge": kb.manifest["sha256"],
    }
    return report(output_dir(args.out, args.quick), curves, settings, rescored)


if __name__ == "__main__":
    main()
