"""Build the meta-dataset: tune every task of ``_hpo_tasks`` in both search spaces and record it in a store.

38 tasks (scikit-learn's bundled datasets and synthetic ones) x 2 search spaces (an MLP trained with
SGD or Adam; HistGradientBoosting), each tuned by Optuna's TPE (the first ``startup`` trials random)
for ``--trials`` trials with an :class:`~automl_meta.integrations.optuna.ExperienceRecorder`. The
Optuna studies live in ``<out>/runs/build_meta_dataset/optuna.log`` (a journal file) and the experience store in
``<out>/runs/build_meta_dataset/experience.db``: a killed run resumes where it stopped (each study is
continued until it has its trials). ``--quick`` builds a small store (6 tasks, 12 trials) in seconds.

Then every task also evaluates the ``--top`` best configurations of every other task (a performance
matrix, as auto-sklearn 2.0 builds its portfolio from), recorded as studies named
``cross-<space>-<origin>-on-<task>``, so that a leave-one-task-out evaluation can drop what came from the
held-out task (:func:`derived_from`).

Writes ``build_meta_dataset.csv`` (best loss and trials per task and space), ``.json`` and ``.png``
(the tasks in the first two principal components of their meta-features).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _hpo_tasks import SPACES, TASK_NAMES, load_data, objective
from _report import output_dir, parser, print_table, save_figure, write_csv, write_json

QUICK_TASKS = ["iris", "wine", "diabetes", "clf01", "clf06", "reg01"]


def run_dir(out: Path) -> Path:
    path = out / "runs" / "build_meta_dataset"
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_url(out: Path) -> str:
    return f"sqlite:///{run_dir(out) / 'experience.db'}"


def _tune(args: tuple[str, str, str, str, int, int]) -> tuple[str, str, int, float]:
    name, space, journal, store, trials, startup = args
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from automl_meta.integrations.optuna import ExperienceRecorder
    from automl_meta.store import TaskDescription

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y, _ = load_data(name)
    seed = TASK_NAMES.index(name) * 2 + SPACES.index(space)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    storage = JournalStorage(JournalFileBackend(journal))
    study = optuna.create_study(
        study_name=f"meta-{name}-{space}", storage=storage, sampler=sampler, load_if_exists=True
    )
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if done < trials:
        recorder = ExperienceRecorder(store=store, task=TaskDescription.from_data(X, y, name=name))
        study.optimize(objective(name, space), n_trials=trials - done, callbacks=[recorder])
        recorder.store.close()
    return name, space, len(study.trials), float(study.best_value)


def build(out: Path, names: list[str], trials: int, startup: int, jobs: int) -> list[tuple]:
    journal = str(run_dir(out) / "optuna.log")
    store = store_url(out)
    from automl_meta.store import ExperienceStore

    ExperienceStore(store).close()  # create the schema once, before the workers
    cases = [(n, s, journal, store, trials, startup) for n in names for s in SPACES]
    if jobs > 1:
        with mp.get_context("spawn").Pool(jobs, initializer=_single_thread) as pool:
            return list(pool.imap_unordered(_tune, cases))
    _single_thread()
    return [_tune(c) for c in cases]


def cross_study(space: str, origin: str, target: str) -> str:
    return f"cross-{space}-{origin}-on-{target}"


def derived_from(study: str, task: str) -> bool:
    """Whether a stored study used knowledge of ``task``: its own tuning, or a configuration it found best."""
    return (
        study in {f"meta-{task}-{s}" for s in SPACES}
        or study.startswith("cross-")
        and (study.endswith(f"-on-{task}") or any(study.startswith(f"cross-{s}-{task}-on-") for s in SPACES))
    )


def _cross(args: tuple[str, str, str, dict[str, list[tuple[dict, dict]]]]) -> int:
    """Evaluate other tasks' best configurations on one task; returns how many evaluations were new."""
    name, space, store_url_, by_origin = args
    from _hpo_tasks import evaluate

    from automl_meta.store import ExperienceStore, TaskDescription

    store = ExperienceStore(store_url_)
    task_id = store.add_task(TaskDescription.from_data(*load_data(name)[:2], name=name))
    new = 0
    for origin, configs in by_origin.items():
        study = cross_study(space, origin, name)
        for rank in range(store.count_evaluations(study=study), len(configs)):  # resumes after a kill
            params, distributions = configs[rank]
            t0 = time.perf_counter()
            value = evaluate(name, space, params)
            new += store.add_evaluation(
                task_id,
                distributions,
                params,
                [value],
                directions=["MINIMIZE"],
                state="COMPLETE",
                study=study,
                trial_number=rank,
                duration_seconds=time.perf_counter() - t0,
            )
    store.close()
    return new


def cross_evaluate(out: Path, names: list[str], top: int, jobs: int) -> int:
    """Evaluate each task's ``top`` best configurations on every other task (resumable); returns the new ones."""
    from automl_meta.store import ExperienceStore

    store = ExperienceStore(store_url(out))
    ids = {t.name: t.id for t in store.tasks()}
    best: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
    for name in names:
        for space in SPACES:
            done = [
                e for e in store.evaluations(ids[name], states=["COMPLETE"], study=f"meta-{name}-{space}") if e.values
            ]
            done.sort(key=lambda e: e.values[0])
            best[name, space] = [(e.params, e.distributions) for e in done[:top]]
    store.close()
    cases = [
        (name, space, store_url(out), {o: best[o, space] for o in names if o != name})
        for name in names
        for space in SPACES
    ]
    if jobs > 1:
        with mp.get_context("spawn").Pool(jobs, initializer=_single_thread) as pool:
            return sum(pool.imap_unordered(_cross, cases))
    _single_thread()
    return sum(_cross(c) for c in cases)


def _single_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def plot(path: Path, store_url_: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from automl_meta.metafeatures import as_vector
    from automl_meta.store import ExperienceStore

    store = ExperienceStore(store_url_)
    tasks = store.tasks()
    F = np.stack([as_vector(t.metafeatures) for t in tasks])
    F = (F - F.mean(0)) / np.where(F.std(0) > 0, F.std(0), 1)
    U, S, _ = np.linalg.svd(F - F.mean(0), full_matrices=False)
    xy = U[:, :2] * S[:2]
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for kind, marker in (("classification", "o"), ("regression", "s")):
        sel = [i for i, t in enumerate(tasks) if t.task_type == kind]
        ax.scatter(xy[sel, 0], xy[sel, 1], marker=marker, label=kind)
    for i, t in enumerate(tasks):
        ax.annotate(t.name or t.fingerprint[:6], xy[i], fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set(xlabel="PC 1", ylabel="PC 2", title="Tasks of the meta-dataset by meta-features")
    ax.legend()
    save_figure(fig, path)
    store.close()


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__, "6 tasks x 2 spaces x 12 trials, for smoke tests")
    p.add_argument("--trials", type=int, help="trials per task and search space (default 60)")
    p.add_argument(
        "--top",
        type=int,
        default=5,
        help="best configurations of each task evaluated on every other task (default 5; 0: none)",
    )
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    args = p.parse_args(argv)
    out = output_dir(args.out, args.quick)
    names = QUICK_TASKS if args.quick else TASK_NAMES
    trials = args.trials or (12 if args.quick else 60)
    startup = min(20, trials // 2)
    t0 = time.perf_counter()
    done = sorted(build(out, names, trials, startup, args.jobs))
    tuned = time.perf_counter() - t0
    top = min(args.top, 3) if args.quick else args.top
    cross = cross_evaluate(out, names, top, args.jobs) if top else 0
    seconds = time.perf_counter() - t0
    headers = ["task", "space", "trials", "best_loss"]
    rows = [[n, s, k, round(v, 5)] for n, s, k, v in done]
    print_table(headers, rows)
    write_csv(out / "build_meta_dataset.csv", headers, rows)
    from automl_meta.store import ExperienceStore

    store = ExperienceStore(store_url(out))
    summary = {
        "tasks": len(names),
        "search_spaces": list(SPACES),
        "trials_per_task_and_space": trials,
        "cross_evaluated_top": top,
        "evaluations": store.count_evaluations(),
        "stored_tasks": len(store.tasks()),
        "seconds": round(seconds, 1),
        "seconds_tuning": round(tuned, 1),
        "new_cross_evaluations": cross,
        "quick": args.quick,
    }
    store.close()
    write_json(out / "build_meta_dataset.json", summary)
    plot(out / "build_meta_dataset.png", store_url(out))
    print(
        f"\n{summary['evaluations']} evaluations of {summary['stored_tasks']} tasks in {store_url(out)} "
        f"({seconds:.0f} s)"
    )
    return summary


if __name__ == "__main__":
    main()
