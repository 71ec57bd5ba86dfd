"""A small experience store for the sampler tests: three past tasks, several search spaces."""

from __future__ import annotations

import optuna
from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_classification

from automl_meta.integrations.optuna import ExperienceRecorder
from automl_meta.store import ExperienceStore, TaskDescription


def _objectives():
    def floats(t):
        return (t.suggest_float("x", -10, 10) - 0.3) ** 2 + t.suggest_float("y", -1, 1) ** 2

    def ints(t):
        return abs(t.suggest_int("x", 1, 100) - 7) + abs(t.suggest_int("y", 1, 100) - 5)

    def cats(t):
        return abs(t.suggest_categorical("x", [1, 10, 100]) - 10) + abs(t.suggest_categorical("y", [-1, -10, -100]))

    def logs(t):
        return abs(t.suggest_float("x", 1e-7, 1.0, log=True) - 0.01) + abs(t.suggest_float("y", 1e-7, 1.0, log=True))

    return [floats, ints, cats, logs]


def new_task() -> TaskDescription:
    return TaskDescription.from_data(*make_classification(200, 8, random_state=0), name="new")


def build_store(url: str) -> ExperienceStore:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = ExperienceStore(url)
    for i, loader in enumerate((load_iris, load_wine, load_breast_cancer)):
        recorder = ExperienceRecorder(
            store=store, task=TaskDescription.from_data(*loader(return_X_y=True), name=loader.__name__[5:])
        )
        for j, objective in enumerate(_objectives()):
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=10 * i + j))
            study.optimize(objective, n_trials=12, callbacks=[recorder])
    return store


def quadratic(centre):
    return lambda t: (t.suggest_float("x", -5, 5) - centre) ** 2 + 0.1 * t.suggest_int("n", 1, 8)


def new_similar() -> TaskDescription:
    return TaskDescription.from_data(*make_classification(300, 10, random_state=2), name="new")


def seeded_params(seed: int, url: str) -> list:
    """The parameters of 14 trials of a seeded MetaLearnedSampler (portfolio, then transfer)."""
    from automl_meta.integrations.optuna import MetaLearnedSampler

    sampler = MetaLearnedSampler(store=url, task=new_similar(), seed=seed, n_portfolio=3)
    study = optuna.create_study(sampler=sampler)
    study.optimize(quadratic(2.0), n_trials=14)
    return [t.params for t in study.trials]


def tuning_worker(url: str, study_name: str, seed: int, n_trials: int) -> None:
    """One of several processes tuning one study: Optuna storage and experience store on the same server."""
    from automl_meta.integrations.optuna import MetaLearnedSampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    task = new_similar()
    store = ExperienceStore(url)
    study = optuna.load_study(
        study_name=study_name, storage=url, sampler=MetaLearnedSampler(store=store, task=task, seed=seed, n_portfolio=8)
    )
    study.optimize(quadratic(2.0), n_trials=n_trials, callbacks=[ExperienceRecorder(store=store, task=task)])
    store.close()
