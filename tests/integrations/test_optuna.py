"""MetaLearnedSampler and ExperienceRecorder: behaviour beyond Optuna's own sampler cases."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from sklearn.datasets import make_classification

from automl_meta.exceptions import TaskError
from automl_meta.integrations.optuna import (
    METAFEATURES_ATTR,
    ExperienceRecorder,
    MetaLearnedSampler,
)
from automl_meta.store import ExperienceStore, TaskDescription

from ._optuna_knowledge import (
    build_store,
    new_similar,
    new_task,
    quadratic,
    seeded_params,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
LOGGER = "automl_meta.integrations.optuna"


@pytest.fixture
def two_tasks(sqlite_url):
    """A store with two past tasks: 'near' (same kind of data as the new task, optimum x=2) and 'far' (x=-3)."""
    store = ExperienceStore(sqlite_url)
    near = TaskDescription.from_data(*make_classification(300, 10, random_state=1), name="near")
    far = TaskDescription.from_data(
        np.random.default_rng(0).exponential(size=(50, 3)) ** 3, np.arange(50) % 2, name="far"
    )
    for task, centre in ((near, 2.0), (far, -3.0)):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(quadratic(centre), n_trials=60, callbacks=[ExperienceRecorder(store=store, task=task)])
    return store


new = new_similar


def test_zero_shot_portfolio_starts_near_the_nearest_task_and_covers_several(two_tasks):
    sampler = MetaLearnedSampler(store=two_tasks, task=new(), seed=0, n_portfolio=6)
    study = optuna.create_study(sampler=sampler)
    study.optimize(quadratic(2.0), n_trials=6)
    xs = [t.params["x"] for t in study.trials]
    assert abs(xs[0] - 2.0) < 0.5  # the best configuration of the most similar task comes first
    assert any(abs(x + 3.0) < 1.0 for x in xs)  # and the portfolio also covers the other neighbour
    # A cold TPE (random start-up trials) is far worse on its first trial.
    cold = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    cold.optimize(quadratic(2.0), n_trials=1)
    assert study.trials[0].value < cold.trials[0].value


def test_portfolio_follows_the_neighbour_whose_results_agree_with_the_study(two_tasks):
    # The new task's data resemble 'far' (optimum x=-3), but its objective behaves like 'near' (x=2).
    like_far = TaskDescription.from_data(
        np.random.default_rng(5).exponential(size=(60, 3)) ** 3, np.arange(60) % 2, name="like-far"
    )
    sampler = MetaLearnedSampler(store=two_tasks, task=like_far, seed=0, n_portfolio=5)
    study = optuna.create_study(sampler=sampler)
    study.optimize(quadratic(2.0), n_trials=5)
    xs = [t.params["x"] for t in study.trials]
    assert abs(xs[0] + 3.0) < 1.0  # the most similar task's best comes first
    assert any(abs(x - 2.0) < 1.0 for x in xs[:2])  # the other neighbour is covered next
    # Once the study's results contradict 'far', the portfolio keeps to what did well on 'near'.
    assert all(abs(x - 2.0) < 1.0 for x in xs[2:]), xs


def test_portfolio_hedges_with_what_the_other_past_tasks_agree_on(sqlite_url):
    # One neighbour (optimum x=2) and four less similar tasks that all do best at x=-3: a new task unlike
    # its neighbour in where its optimum lies still gets x=-3 among its first three trials.
    store = ExperienceStore(sqlite_url)
    tasks = [(TaskDescription.from_data(*make_classification(300, 10, random_state=1), name="near"), 2.0)]
    for i in range(4):
        X = np.random.default_rng(i).exponential(size=(60 + 10 * i, 3)) ** 3
        tasks.append((TaskDescription.from_data(X, np.arange(len(X)) % 2, name=f"other-{i}"), -3.0))
    for task, centre in tasks:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(quadratic(centre), n_trials=40, callbacks=[ExperienceRecorder(store=store, task=task)])
    sampler = MetaLearnedSampler(store=store, task=new(), seed=0, n_portfolio=3, n_neighbors=1)
    study = optuna.create_study(sampler=sampler)
    study.optimize(quadratic(-3.0), n_trials=3)
    xs = [t.params["x"] for t in study.trials]
    assert abs(xs[0] - 2.0) < 0.5, xs  # the neighbour's best first: it carries the most weight
    assert any(abs(x + 3.0) < 0.5 for x in xs[1:]), xs


def test_portfolio_discounts_a_past_tasks_lucky_best(sqlite_url):
    # The past task's best trial is a fluke: a configuration far from where its loss is low and smooth.
    fluke = -4.0

    def lucky(trial):
        x = trial.suggest_float("x", -5, 5)
        return -0.5 if x == fluke else (x - 2.0) ** 2

    store = ExperienceStore(sqlite_url)
    past = TaskDescription.from_data(*make_classification(300, 10, random_state=1), name="past")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"x": fluke})
    study.optimize(lucky, n_trials=60, callbacks=[ExperienceRecorder(store=store, task=past)])
    assert study.best_params["x"] == fluke
    sampler = MetaLearnedSampler(store=store, task=new(), seed=0, n_portfolio=1)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 2.0) ** 2, n_trials=1)
    # The first pick is among the task's good configurations near x=2, not its luckiest one.
    assert abs(study.trials[0].params["x"] - 2.0) < 0.5, study.trials[0].params


def test_parallel_workers_get_different_portfolio_configurations(two_tasks):
    sampler = MetaLearnedSampler(store=two_tasks, task=new(), seed=0, n_portfolio=6)
    study = optuna.create_study(sampler=sampler)
    study.optimize(quadratic(2.0), n_trials=6, n_jobs=3)
    configs = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(configs) == 6


def test_transfer_phase_uses_past_observations(two_tasks):
    def mean_distance(sampler):
        study = optuna.create_study(sampler=sampler)
        study.optimize(quadratic(2.0), n_trials=25)
        return np.mean([abs(t.params["x"] - 2.0) for t in study.trials[5:15]])

    meta = np.mean(
        [mean_distance(MetaLearnedSampler(store=two_tasks, task=new(), seed=s, n_portfolio=5)) for s in range(3)]
    )
    tpe = np.mean([mean_distance(optuna.samplers.TPESampler(seed=s)) for s in range(3)])
    assert meta < 0.6 * tpe


def test_transfer_phase_steps_around_the_best_trial_and_never_repeats_one(sqlite_url):
    # Integer parameters: most small steps round back to a configuration the study has already run.
    store = ExperienceStore(sqlite_url)
    past = TaskDescription.from_data(*make_classification(300, 10, random_state=1), name="past")

    def objective(t):
        return abs(t.suggest_int("x", 1, 100) - 30) + abs(t.suggest_int("y", 1, 100) - 60)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=60, callbacks=[ExperienceRecorder(store=store, task=past)])
    sampler = MetaLearnedSampler(store=store, task=new(), seed=0, n_portfolio=3)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=15)
    configs = [(t.params["x"], t.params["y"]) for t in study.trials]
    assert len(set(configs)) == len(configs)
    stepped = 0
    for i in range(3, len(configs)):  # each transfer trial is a step from the best trial before it ...
        best = min(study.trials[:i], key=lambda t: t.value)
        if sum(t.value == best.value for t in study.trials[:i]) > 1:
            continue  # ... unless trials tie at the best (a flat region): then it may look anywhere
        stepped += 1
        dx, dy = abs(configs[i][0] - best.params["x"]), abs(configs[i][1] - best.params["y"])
        assert dx <= 40 and dy <= 40, (i, configs)
    assert stepped >= 6


def test_transfer_phase_does_not_spend_trials_next_to_earlier_ones_at_the_edge_of_the_range(sqlite_url):
    # The loss falls towards the top of the range: steps around the best trial pile up at the edge.
    store = ExperienceStore(sqlite_url)
    past = TaskDescription.from_data(*make_classification(300, 10, random_state=1), name="past")

    def objective(t):
        return -t.suggest_float("x", 0.0, 10.0)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=40, callbacks=[ExperienceRecorder(store=store, task=past)])
    sampler = MetaLearnedSampler(store=store, task=new(), seed=0, n_portfolio=2)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=12)
    xs = np.array([t.params["x"] for t in study.trials])
    # Each transfer trial keeps 0.02 of the range from every earlier trial: nearer would be nearly a repeat.
    gaps = [np.abs(xs[:i] - xs[i]).min() for i in range(2, len(xs))]
    assert min(gaps) >= 0.2, xs
    assert study.best_value < -9.5  # and the study still gets to the edge


def test_transfer_learns_from_distant_tasks_when_no_neighbour_ran_the_narrowed_range(sqlite_url):
    # The only neighbour ran x > 0; the study searches x <= 0, where only the distant task has results.
    store = ExperienceStore(sqlite_url)
    near = TaskDescription.from_data(*make_classification(300, 10, random_state=1), name="near")
    far = TaskDescription.from_data(
        np.random.default_rng(0).exponential(size=(50, 3)) ** 3, np.arange(50) % 2, name="far"
    )
    for task, xs in ((near, np.linspace(0.5, 4.5, 20)), (far, np.linspace(-4.5, 4.5, 40))):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for x in xs:
            study.enqueue_trial({"x": float(x)})
        study.optimize(
            lambda t: (t.suggest_float("x", -5, 5) + 2.0) ** 2,
            n_trials=len(xs),
            callbacks=[ExperienceRecorder(store=store, task=task)],
        )
    sampler = MetaLearnedSampler(store=store, task=new(), seed=0, n_portfolio=0, n_neighbors=1)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", -5, 0) + 2.0) ** 2, n_trials=4)
    assert all(np.isfinite(t.value) for t in study.trials)
    assert abs(study.trials[0].params["x"] + 2.0) < 1.0  # the distant task's optimum, not a guess


def test_transfer_sampler_is_chosen_after_the_portfolio(two_tasks, monkeypatch):
    sampler = MetaLearnedSampler(store=two_tasks, task=new(), seed=0, n_portfolio=2)
    calls = []
    original = sampler._transfer
    monkeypatch.setattr(sampler, "_transfer", lambda *a: calls.append(1) or original(*a))
    optuna.create_study(sampler=sampler).optimize(quadratic(2.0), n_trials=6)
    assert len(calls) == 4  # trials 2..5; trial 0 and 1 are the portfolio


def test_empty_store_behaves_like_the_base_sampler(sqlite_url, caplog):
    def params(sampler):
        study = optuna.create_study(sampler=sampler)
        study.optimize(quadratic(1.0), n_trials=15)
        return [t.params for t in study.trials]

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        meta = params(MetaLearnedSampler(store=sqlite_url, task=new_task(), seed=3, knowledge=None))
    assert meta == params(optuna.samplers.TPESampler(seed=3))
    assert "no completed single-objective trials" in caplog.text and "TPESampler" in caplog.text


def test_unseen_search_space_falls_back_with_a_log_line(two_tasks, caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        study = optuna.create_study(sampler=MetaLearnedSampler(store=two_tasks, task=new(), seed=0))
        study.optimize(lambda t: t.suggest_float("z", 0, 1) + t.suggest_int("w", 0, 3), n_trials=12)
    assert "never seen parameters ['z']" in caplog.text
    tpe = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    tpe.optimize(lambda t: t.suggest_float("z", 0, 1) + t.suggest_int("w", 0, 3), n_trials=12)
    assert [t.params for t in study.trials] == [t.params for t in tpe.trials]


def test_parameter_without_history_goes_to_the_base_sampler(two_tasks, caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        study = optuna.create_study(sampler=MetaLearnedSampler(store=two_tasks, task=new(), seed=0))
        study.optimize(lambda t: quadratic(2.0)(t) + t.suggest_float("extra", 0, 1), n_trials=12)
    assert "no history for parameter 'extra'" in caplog.text
    assert abs(study.trials[0].params["x"] - 2.0) < 0.5


def test_no_task_means_base_sampler(two_tasks, caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        study = optuna.create_study(sampler=MetaLearnedSampler(store=two_tasks, seed=0))
        study.optimize(quadratic(2.0), n_trials=3)
    assert "no task to compare" in caplog.text


def test_multi_objective_uses_base_sampler_with_a_log_line(two_tasks, caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        study = optuna.create_study(
            directions=["minimize", "maximize"], sampler=MetaLearnedSampler(store=two_tasks, task=new(), seed=0)
        )
        study.optimize(lambda t: (t.suggest_float("x", -5, 5) ** 2, t.suggest_int("n", 1, 8)), n_trials=15)
    assert "multi-objective" in caplog.text and len(study.best_trials) >= 1


def test_maximize_studies_use_the_knowledge_the_right_way_round(sqlite_url):
    store = ExperienceStore(sqlite_url)
    past = TaskDescription.from_data(*make_classification(300, 10, random_state=1), name="past")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: -quadratic(2.0)(t), n_trials=60, callbacks=[ExperienceRecorder(store=store, task=past)])
    new_study = optuna.create_study(direction="maximize", sampler=MetaLearnedSampler(store=store, task=new(), seed=0))
    new_study.optimize(lambda t: -quadratic(2.0)(t), n_trials=1)
    assert abs(new_study.trials[0].params["x"] - 2.0) < 0.5


def test_conditional_dynamic_failed_and_pruned_trials(two_tasks):
    def objective(t):
        x = t.suggest_float("x", -5, 5)
        if x > 0:
            t.suggest_int("n", 1, 8)
        else:
            t.suggest_categorical("kind", ["a", "b", None])
        t.suggest_float("dyn", 0, 1 + t.number)  # a range that grows
        if t.number % 5 == 3:
            raise optuna.TrialPruned()
        if t.number % 7 == 6:
            return float("nan")  # a failed trial
        return x**2

    sampler = MetaLearnedSampler(store=two_tasks, task=new(), seed=0, n_portfolio=4)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=30, catch=())
    states = {t.state for t in study.trials}
    assert {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL} <= states
    for t in study.trials:
        for name, value in t.params.items():
            d = t.distributions[name]
            assert d._contains(d.to_internal_repr(value))
            assert not isinstance(value, (np.floating, np.integer))


def test_seed_fixes_the_trials_also_across_processes(two_tasks):
    import pathlib

    url = two_tasks.url
    first = seeded_params(0, url)
    assert first == seeded_params(0, url)
    assert first != seeded_params(1, url)
    code = (
        "import json, sys, optuna; optuna.logging.set_verbosity(optuna.logging.ERROR); "
        "sys.path.insert(0, sys.argv[1]); from _optuna_knowledge import seeded_params; "
        "print(json.dumps(seeded_params(0, sys.argv[2])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(pathlib.Path(__file__).parent), url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(first))


def test_reseed_rng_changes_the_random_stream(two_tasks):
    a = MetaLearnedSampler(store=two_tasks, task=new(), seed=0, n_portfolio=0)
    b = MetaLearnedSampler(store=two_tasks, task=new(), seed=0, n_portfolio=0)
    b.reseed_rng()
    sa, sb = optuna.create_study(sampler=a), optuna.create_study(sampler=b)
    sa.optimize(quadratic(2.0), n_trials=12)
    sb.optimize(quadratic(2.0), n_trials=12)
    assert [t.params for t in sa.trials] != [t.params for t in sb.trials]


def test_threads_share_one_sampler(two_tasks):
    study = optuna.create_study(sampler=MetaLearnedSampler(store=two_tasks, task=new(), seed=0))
    study.optimize(quadratic(2.0), n_trials=20, n_jobs=2)
    assert len(study.trials) == 20 and study.best_value < 0.5


def test_recorder_records_every_finished_trial_once(sqlite_url):
    store = ExperienceStore(sqlite_url)
    recorder = ExperienceRecorder(store=store, task=new_task())

    def objective(t):
        x = t.suggest_float("x", 0, 1)
        if t.number == 1:
            raise optuna.TrialPruned()
        if t.number == 2:
            raise ValueError("boom")
        return x

    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=5, callbacks=[recorder], catch=(ValueError,))
    for t in study.trials:  # a second call for the same trial is ignored
        recorder(study, t)
    evs = store.evaluations(study=study.study_name)
    assert [e.trial_number for e in evs] == [0, 1, 2, 3, 4]
    assert [e.state for e in evs] == ["COMPLETE", "PRUNED", "FAIL", "COMPLETE", "COMPLETE"]
    assert evs[0].values == [study.trials[0].value] and evs[0].directions == ["MAXIMIZE"]
    assert evs[0].duration_seconds is not None and evs[0].duration_seconds >= 0
    assert study.user_attrs[METAFEATURES_ATTR] == new_task().metafeatures


def _first_trial(sampler: MetaLearnedSampler) -> None:
    optuna.create_study(sampler=sampler).optimize(quadratic(2.0), n_trials=1)


def test_tasks_that_cannot_be_described_are_refused(sqlite_url):
    # The sampler's constructor only stores its arguments: the task is described on the first trial.
    for task, match in (
        ((np.ones((1, 3)), [0]), "at least 6 rows"),
        ((np.full((20, 3), np.inf), np.arange(20) % 2), "infinite"),
        ({"simple.log_rows": 3.0}, "missing"),
    ):
        sampler = MetaLearnedSampler(store=sqlite_url, task=task)
        with pytest.raises(TaskError, match=match):
            _first_trial(sampler)
    with pytest.raises(TypeError, match="task must be"):
        _first_trial(MetaLearnedSampler(store=sqlite_url, task="iris"))
    with pytest.raises(TaskError, match="constant"):
        ExperienceRecorder(store=sqlite_url, task=(np.ones((20, 3)), np.arange(20) % 2))


def test_bad_arguments(sqlite_url):
    for kw in ({"n_neighbors": 0}, {"n_portfolio": -1}, {"prior_weight": -1.0}, {"n_candidates": True}):
        sampler = MetaLearnedSampler(store=sqlite_url, task=new_task(), **kw)
        with pytest.raises(ValueError, match=next(iter(kw))):
            _first_trial(sampler)


def test_store_errors_surface_from_the_first_trial():
    from automl_meta.exceptions import StoreError

    sampler = MetaLearnedSampler(store="redis://localhost/0", task=new_task())  # nothing opened yet
    study = optuna.create_study(sampler=sampler)
    with pytest.raises(StoreError, match="Unknown store URL scheme"):
        study.ask()


def test_the_constructor_only_stores_its_arguments(sqlite_url, monkeypatch):
    from automl_meta.integrations.optuna import _sampler

    calls = []
    monkeypatch.setattr(_sampler, "_as_store", lambda s: calls.append("store") or ExperienceStore(s))
    monkeypatch.setattr(_sampler, "_as_task", lambda t: calls.append("task") or TaskDescription.from_data(*t))
    X, y = make_classification(60, 4, random_state=0)
    sampler = MetaLearnedSampler(store=sqlite_url, task=(X, y), seed=0)
    assert calls == []
    study = optuna.create_study(sampler=sampler)
    study.optimize(quadratic(2.0), n_trials=3, n_jobs=3)
    assert calls == ["store", "task"]  # once, however many threads ask at first


def test_sampler_pickles_before_and_after_use(two_tasks):
    import pickle

    def run(sampler, study=None):
        study = study or optuna.create_study(sampler=sampler)
        study.optimize(quadratic(2.0), n_trials=4)
        return study

    sampler = MetaLearnedSampler(store=two_tasks.url, task=new(), seed=0, n_portfolio=2)
    copy = pickle.loads(pickle.dumps(sampler))
    assert [t.params for t in run(copy).trials] == [t.params for t in run(sampler).trials]
    used = pickle.loads(pickle.dumps(sampler))  # store reopened, random state kept
    assert len(run(used).trials) == 4


def test_knowledge_store_used_by_the_optuna_cases_is_known(tmp_path):
    store = build_store(f"sqlite:///{tmp_path / 'k.db'}")
    assert len(store.tasks()) == 3 and store.count_evaluations() == 3 * 4 * 12
    sampler = MetaLearnedSampler(store=store, task=new_task(), seed=0, n_portfolio=4)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", -10, 10) - 0.3) ** 2, n_trials=1)
    # The first trial is one of the three best stored configurations of a past task in that search space.
    best = set()
    for task in store.tasks():
        evs = [e for e in store.evaluations(task.id) if e.distributions.get("x") == FloatDistribution(-10, 10)]
        best |= {e.params["x"] for e in sorted(evs, key=lambda e: e.values[0])[:3]}
    assert study.trials[0].params["x"] in best
