"""MetaLearnedSampler with the knowledge file shipped in the package: what a user gets on a fresh install."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from sklearn.datasets import make_classification, make_regression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from automl_meta import knowledge
from automl_meta.integrations.optuna import ExperienceRecorder, MetaLearnedSampler
from automl_meta.integrations.optuna._search_space import _clip
from automl_meta.knowledge._objective import ESTIMATORS, estimator_for
from automl_meta.spaces import SPACES, SearchSpace, for_estimator

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Datasets outside the corpus (the corpus holds no generated data).
DATA = {
    "classification": make_classification(240, 7, n_informative=4, random_state=3),
    "regression": make_regression(240, 6, noise=5.0, random_state=3),
}
CASES = [(t, s) for t in ESTIMATORS for s in ESTIMATORS[t]]


@pytest.fixture(scope="module")
def bundled():
    return knowledge.load()


def _stored(bundled, spaces, task_type):
    """Every configuration the knowledge holds for these spaces, as JSON for comparison."""
    out = set()
    for name in spaces:
        block = bundled.block(name, task_type)
        out |= {json.dumps(block.config(i), sort_keys=True) for i in range(len(block.configs))}
    return out


def _first_trial(sampler, space: SearchSpace, prefix: str = "") -> dict:
    study = optuna.create_study(sampler=sampler)
    trial = study.ask()
    params = space.suggest(trial, prefix)
    study.tell(trial, 0.5)
    return {name[len(prefix) :]: value for name, value in params.items()}


@pytest.mark.parametrize("task_type, space", CASES)
def test_a_fresh_install_warm_starts_every_space_from_the_bundled_knowledge(bundled, sqlite_url, task_type, space):
    if not any(t["task_type"] == task_type for t in bundled.tasks):
        pytest.fail(f"the bundled knowledge has no {task_type} task")
    pipeline = make_pipeline(StandardScaler(), estimator_for(space, task_type))
    looked_up = for_estimator(pipeline)  # how a user finds the space of their Pipeline
    assert looked_up.name == space
    sampler = MetaLearnedSampler(task=DATA[task_type], store=sqlite_url, seed=0)
    first = _first_trial(sampler, SPACES[space], looked_up.prefix)
    assert json.dumps(first, sort_keys=True) in _stored(bundled, [space], task_type)


def test_forests_without_a_pipeline_step_name_share_their_knowledge(bundled, sqlite_url):
    # Random forests and extra trees have the same parameter names: without a step name to tell them
    # apart, both spaces' runs serve the study.
    sampler = MetaLearnedSampler(task=DATA["classification"], store=sqlite_url, seed=0)
    first = _first_trial(sampler, SPACES["extra_trees"])
    assert json.dumps(first, sort_keys=True) in _stored(bundled, ["random_forest", "extra_trees"], "classification")


def _ranged(space: SearchSpace, factor: float) -> SearchSpace:
    """The space with every numeric range shrunk (factor < 1) or widened (factor > 1) around its middle."""
    params = {}
    for name, d in space.params.items():
        if isinstance(d, FloatDistribution) and d.log:
            mid, half = np.sqrt(d.low * d.high), np.sqrt(d.high / d.low) ** factor
            params[name] = FloatDistribution(mid / half, mid * half, log=True)
        elif isinstance(d, FloatDistribution):
            mid, half = (d.low + d.high) / 2, (d.high - d.low) / 2 * factor
            params[name] = FloatDistribution(mid - half, mid + half)
        elif isinstance(d, IntDistribution):
            low, high = (d.low, d.high) if factor > 1 else (d.low + 2, max(d.high // 2, d.low + 3))
            params[name] = IntDistribution(
                max(1, low if factor < 1 else low), high * 2 if factor > 1 else high, log=d.log
            )
        else:
            params[name] = d
    return SearchSpace(space.name, space.estimators, params, space.conditional, space.fixed)


@pytest.mark.parametrize("factor", [0.6, 3.0], ids=["narrower", "wider"])
@pytest.mark.parametrize("task_type, space", [("classification", "hist_gradient_boosting"), ("regression", "svr")])
def test_other_ranges_for_the_same_names_still_warm_start(bundled, sqlite_url, factor, task_type, space):
    user_space = _ranged(SPACES[space], factor)
    assert user_space.distributions() != SPACES[space].distributions()
    # On the first trial the study's ranges are not known yet: stored values outside them are clipped in.
    clipped = {
        json.dumps({n: _clip(user_space.params[n], v) for n, v in json.loads(c).items()}, sort_keys=True)
        for c in _stored(bundled, [space], task_type)
    }
    sampler = MetaLearnedSampler(task=DATA[task_type], store=sqlite_url, seed=0)
    study = optuna.create_study(sampler=sampler)
    for _ in range(3):  # the portfolio's later picks fit the ranges the study has shown
        trial = study.ask()
        user_space.suggest(trial)
        study.tell(trial, 0.5)
    assert json.dumps(study.trials[0].params, sort_keys=True) in clipped
    stored = _stored(bundled, [space], task_type)
    assert all(json.dumps(t.params, sort_keys=True) in stored for t in study.trials[1:])


def test_knowledge_none_with_an_empty_store_is_the_base_sampler(sqlite_url):
    space = SPACES["svc"]
    meta = optuna.create_study(
        sampler=MetaLearnedSampler(task=DATA["classification"], store=sqlite_url, seed=1, knowledge=None)
    )
    tpe = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    for _ in range(3):
        for study in (meta, tpe):
            trial = study.ask()
            space.suggest(trial)
            study.tell(trial, float(trial.params["C"]))
    assert [t.params for t in meta.trials] == [t.params for t in tpe.trials]


def _broken(tmp_path, how: str):
    src = knowledge.bundled_path()
    dst = tmp_path / src.name
    dst.write_bytes(src.read_bytes())
    data = src.with_suffix(".npz").read_bytes()
    if how == "damaged":
        dst.with_suffix(".npz").write_bytes(data[: len(data) // 2])
    return dst


@pytest.mark.parametrize("how", ["missing", "damaged"])
def test_a_missing_or_damaged_file_warns_and_falls_back_to_the_store(tmp_path, sqlite_url, how):
    # The user's store knows a past task on the same data: its best configuration starts the study.
    space = SPACES["ridge"]
    X, y = DATA["regression"]
    past = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    best_alpha = 123.0
    past.enqueue_trial({"alpha": best_alpha})
    past.optimize(
        lambda t: abs(np.log(space.suggest(t)["alpha"] / best_alpha)),
        n_trials=8,
        callbacks=[ExperienceRecorder(store=sqlite_url, task=(X, y))],
    )
    sampler = MetaLearnedSampler(task=(X, y), store=sqlite_url, seed=0, knowledge=_broken(tmp_path, how))
    with pytest.warns(UserWarning, match="cannot use the knowledge file .* goes on with the experience store alone"):
        first = _first_trial(sampler, space)
    assert first == {"alpha": best_alpha}


def test_the_users_own_runs_join_the_bundled_knowledge(sqlite_url):
    space = SPACES["ridge"]
    X, y = DATA["regression"]
    past = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    mine = 0.00123  # a value no bundled run holds: it comes from the user's store
    past.enqueue_trial({"alpha": mine})
    past.optimize(
        lambda t: abs(np.log(space.suggest(t)["alpha"] / mine)),
        n_trials=8,
        callbacks=[ExperienceRecorder(store=sqlite_url, task=(X, y))],
    )
    study = optuna.create_study(sampler=MetaLearnedSampler(task=(X, y), store=sqlite_url, seed=0))
    for _ in range(5):  # the portfolio
        trial = study.ask()
        space.suggest(trial)
        study.tell(trial, 0.5)
    alphas = [t.params["alpha"] for t in study.trials]
    assert mine in alphas
    assert len(set(alphas) - {mine}) >= 1  # and the bundled knowledge still serves the rest


def test_a_users_table_with_text_and_missing_values_warm_starts(bundled, sqlite_url):
    import pandas as pd

    X, y = DATA["classification"]
    table = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    table["colour"] = np.where(X[:, 0] > 0, "red", "blue")
    table.loc[::9, "f1"] = np.nan
    sampler = MetaLearnedSampler(task=(table, y), store=sqlite_url, seed=0)
    first = _first_trial(sampler, SPACES["k_neighbors"])
    assert json.dumps(first, sort_keys=True) in _stored(bundled, ["k_neighbors"], "classification")
