"""The experience store on SQLite and on the real PostgreSQL and MariaDB servers."""

from __future__ import annotations

import math
import multiprocessing as mp

import pytest
import sqlalchemy as sa
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from sklearn.datasets import load_iris, load_wine

from automl_meta.exceptions import StoreError, StoreSchemaError
from automl_meta.store import ExperienceStore, TaskDescription, default_url, upgrade
from automl_meta.store.store import _engine, _migrate

SPACE = {
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "width": IntDistribution(8, 64, log=True),
    "act": CategoricalDistribution(["relu", "tanh", None]),
}


def _fill(store: ExperienceStore) -> int:
    task = store.add_task(TaskDescription.from_data(*load_iris(return_X_y=True), name="iris"))
    assert store.add_evaluation(
        task,
        SPACE,
        {"lr": 0.01, "width": 16, "act": None},
        [0.25],
        directions=["minimize"],
        state="COMPLETE",
        study="s",
        trial_number=0,
        duration_seconds=1.5,
    )
    assert store.add_evaluation(
        task,
        SPACE,
        {"lr": 0.5, "width": 8, "act": "relu"},
        [math.inf],
        directions=["minimize"],
        state="COMPLETE",
        study="s",
        trial_number=1,
    )
    assert store.add_evaluation(
        task, SPACE, {"lr": 0.5}, None, directions=["minimize"], state="FAIL", study="s", trial_number=2
    )
    return task


def _check_roundtrip(store: ExperienceStore, task: int) -> None:
    [t] = store.tasks()
    assert t.id == task and t.name == "iris" and t.n_rows == 150 and t.n_classes == 3
    assert t.metafeatures == TaskDescription.from_data(*load_iris(return_X_y=True)).metafeatures
    evs = store.evaluations(task)
    assert [e.trial_number for e in evs] == [0, 1, 2]
    assert evs[0].params == {"lr": 0.01, "width": 16, "act": None} and evs[0].values == [0.25]
    assert evs[0].duration_seconds == 1.5 and evs[0].distributions == SPACE
    assert evs[1].values == [math.inf] and evs[2].values is None and evs[2].state == "FAIL"
    assert len(store.search_spaces()) == 1  # one signature, stored once
    assert store.count_evaluations() == 3 and store.count_evaluations(study="other") == 0
    assert [e.trial_number for e in store.evaluations(states=["COMPLETE"])] == [0, 1]


def test_roundtrip_sqlite(sqlite_url):
    store = ExperienceStore(sqlite_url)
    _check_roundtrip(store, _fill(store))
    # Reopening finds the same data; the same task and the same trial are not stored twice.
    again = ExperienceStore(sqlite_url)
    assert again.add_task(TaskDescription.from_data(*load_iris(return_X_y=True))) == store.tasks()[0].id
    assert not again.add_evaluation(
        store.tasks()[0].id,
        SPACE,
        {"lr": 0.02},
        [0.3],
        directions=["minimize"],
        state="COMPLETE",
        study="s",
        trial_number=0,
    )
    _check_roundtrip(again, store.tasks()[0].id)


def test_roundtrip_server(server_url):
    store = ExperienceStore(server_url)
    assert store.revision == "0003"
    _check_roundtrip(store, _fill(store))
    store.close()


def test_the_head_revision_constant_is_alembics_head():
    from automl_meta.store.migration import HEAD, _alembic_head

    assert HEAD == _alembic_head()


def test_artifacts_are_stored_once(sqlite_url):
    store = ExperienceStore(sqlite_url)
    task = store.add_task(TaskDescription.from_data(*load_wine(return_X_y=True)))
    a = store.add_artifact("model.ameta", "artifact", "ab" * 32, {"accuracy": 0.9}, task_id=task)
    assert store.add_artifact("model.ameta", "artifact", "ab" * 32) == a
    assert store.artifacts() == [
        {
            "id": a,
            "task_id": task,
            "name": "model.ameta",
            "kind": "artifact",
            "sha256": "ab" * 32,
            "metrics": {"accuracy": 0.9},
        }
    ]


def test_store_shares_a_database_with_an_optuna_storage(sqlite_url):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=sqlite_url)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    store = ExperienceStore(sqlite_url)
    _fill(store)
    assert len(optuna.load_study(study_name=study.study_name, storage=sqlite_url).trials) == 2
    assert store.count_evaluations() == 3


def test_unknown_scheme_is_refused_clearly():
    with pytest.raises(StoreError, match="Unknown store URL scheme 'mongodb'"):
        ExperienceStore("mongodb://localhost/x")
    with pytest.raises(StoreError, match="not a database URL"):
        ExperienceStore("not a url")


def test_unreachable_database_is_refused_clearly():
    with pytest.raises(StoreError, match="Cannot reach the store database at postgresql\\+psycopg://u:\\*\\*\\*@"):
        ExperienceStore("postgresql://u:secret@127.0.0.1:1/x")


def test_older_schema_says_how_to_upgrade(sqlite_url):
    engine = _engine(sqlite_url, None)
    _migrate(engine, "0001")  # a store written by an older automl-meta
    engine.dispose()
    with pytest.raises(StoreSchemaError, match=r"revision 0001.*needs 0003(.|\n)*automl-meta store upgrade"):
        ExperienceStore(sqlite_url)
    assert upgrade(sqlite_url) == ("0001", "0003")
    assert ExperienceStore(sqlite_url).revision == "0003"


def test_newer_schema_is_refused(sqlite_url):
    ExperienceStore(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE automl_meta_alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreSchemaError, match="newer version"):
        ExperienceStore(sqlite_url)


def test_default_url_is_a_sqlite_file_in_the_user_data_dir(monkeypatch):
    monkeypatch.delenv("AUTOML_META_STORE", raising=False)
    url = default_url()
    assert url.startswith("sqlite:///") and url.endswith("experience.db") and "automl-meta" in url
    monkeypatch.setenv("AUTOML_META_STORE", "sqlite:///elsewhere.db")
    assert default_url() == "sqlite:///elsewhere.db"


def test_store_pickles_by_url(sqlite_url):
    import pickle

    store = ExperienceStore(sqlite_url)
    _fill(store)
    assert pickle.loads(pickle.dumps(store)).count_evaluations() == 3


def _add_same_things(url: str, worker: int, description: TaskDescription) -> None:
    store = ExperienceStore(url)
    for i in range(10):
        task = store.add_task(description)
        store.add_evaluation(
            task,
            SPACE,
            {"lr": 0.1},
            [float(i)],
            directions=["minimize"],
            state="COMPLETE",
            study="shared",
            trial_number=i,
        )  # every worker tries the same 10 trials
        store.add_evaluation(
            task,
            SPACE,
            {"lr": 0.1},
            [float(i)],
            directions=["minimize"],
            state="COMPLETE",
            study=f"own-{worker}",
            trial_number=i,
        )
    store.close()


def test_concurrent_writers_neither_lose_nor_duplicate(server_url):
    ExperienceStore(server_url).close()
    description = TaskDescription.from_data(*load_iris(return_X_y=True))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_add_same_things, args=(server_url, w, description)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = ExperienceStore(server_url)
    assert len(store.tasks()) == 1 and len(store.search_spaces()) == 1
    assert store.count_evaluations(study="shared") == 10
    assert store.count_evaluations() == 10 + 3 * 10
    store.close()
