"""ExperienceRecorder: same-named studies kept apart, any study name recorded, store failures never stop tuning."""

from __future__ import annotations

import logging
import os

import optuna
import pytest
from sklearn.datasets import load_iris

from automl_meta.exceptions import StoreError
from automl_meta.integrations.optuna import ExperienceRecorder
from automl_meta.store import ExperienceStore, Spool, TaskDescription

from ._faults import Proxy

optuna.logging.set_verbosity(optuna.logging.WARNING)
TASK = TaskDescription.from_data(*load_iris(return_X_y=True), name="iris")


def objective(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0, 1)


def _run(name: str, recorder: ExperienceRecorder, n_trials: int = 3, storage=None) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=storage)
    study.optimize(objective, n_trials=n_trials, callbacks=[recorder])
    return study


def _same_names_and_any_name(url: str, tmp_path) -> None:
    store = ExperienceStore(url)
    recorder = ExperienceRecorder(store=store, task=TASK, spool_dir=tmp_path)
    first, second = _run("my-study", recorder), _run("my-study", recorder)  # two runs of one script
    assert store.count_evaluations(study="my-study") == 6
    assert len({e.study_key for e in store.evaluations(study="my-study")}) == 2
    evaluations = {(e.study_key, e.trial_number): e.params for e in store.evaluations(study="my-study")}
    for study in (first, second):
        key = study.user_attrs["automl_meta_study_key"]
        assert [evaluations[key, t.number] for t in study.trials] == [t.params for t in study.trials]
    # MariaDB's default collation took these three for one name; and any name Optuna takes records.
    names = ["Study", "study", "study ", "n" * 512, "emoji \N{SLIGHTLY SMILING FACE} and NUL \x00"]
    for name in names:
        _run(name, recorder, n_trials=2)
    assert [store.count_evaluations(study=name) for name in names] == [2] * len(names)
    assert store.count_evaluations() == 6 + 2 * len(names) and len(recorder.spool) == 0
    store.close()


def test_same_named_studies_and_any_name_sqlite(sqlite_url, tmp_path):
    _same_names_and_any_name(sqlite_url, tmp_path)


def test_same_named_studies_and_any_name_server(server_url, tmp_path):
    _same_names_and_any_name(server_url, tmp_path)


def test_a_read_only_store_does_not_stop_the_study(tmp_path, caplog):
    path = tmp_path / "experience.db"
    ExperienceStore(f"sqlite:///{path}").close()
    recorder = ExperienceRecorder(
        store=f"sqlite:///file:{path}?mode=ro&uri=true", task=TASK, spool_dir=tmp_path / "spool"
    )
    with caplog.at_level(logging.WARNING, logger="automl_meta.store"):
        study = _run("ro", recorder, n_trials=4)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert caplog.text.count("of study 'ro' was not recorded in the store") == 4 and "is read-only" in caplog.text
    assert len(recorder.spool) == 4
    # The spool belongs to the store's file, whatever URL opened it: a writable store takes the trials.
    writable = ExperienceStore(f"sqlite:///{path}")
    assert Spool(writable.url, directory=tmp_path / "spool").flush(writable) == 4
    assert sorted(e.trial_number for e in writable.evaluations(study="ro")) == [0, 1, 2, 3]


def test_strict_recording_raises(tmp_path):
    path = tmp_path / "experience.db"
    ExperienceStore(f"sqlite:///{path}").close()
    recorder = ExperienceRecorder(
        store=f"sqlite:///file:{path}?mode=ro&uri=true", task=TASK, strict=True, spool_dir=tmp_path
    )
    with pytest.raises(StoreError, match="is read-only"):
        _run("strict", recorder)
    assert len(recorder.spool) == 0


def test_a_deleted_sqlite_store_spools_instead_of_losing_trials(tmp_path, caplog):
    path = tmp_path / "experience.db"
    recorder = ExperienceRecorder(store=f"sqlite:///{path}", task=TASK, spool_dir=tmp_path / "spool")
    study = optuna.create_study(study_name="deleted")
    study.optimize(objective, n_trials=2, callbacks=[recorder])
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    with caplog.at_level(logging.WARNING, logger="automl_meta.store"):
        study.optimize(objective, n_trials=3, callbacks=[recorder])
    assert len(study.trials) == 5 and "experience.db was deleted while this process was using it" in caplog.text
    assert len(recorder.spool) == 3 and not path.exists()
    # A new process opens (creates) the store at that path and writes what waited.
    again = ExperienceRecorder(store=f"sqlite:///{path}", task=TASK, spool_dir=tmp_path / "spool")
    assert again.flush() == 3
    assert sorted(e.trial_number for e in again.store.evaluations(study="deleted")) == [2, 3, 4]


def test_a_dropped_server_spools_and_flushes(server_url, tmp_path, caplog):
    from sqlalchemy.engine import make_url

    target = make_url(server_url)
    proxy = Proxy(target.host, target.port)
    try:
        store = ExperienceStore(proxy.url(server_url), timeout=2)
        recorder = ExperienceRecorder(store=store, task=TASK, spool_dir=tmp_path)
        study = optuna.create_study(study_name="dropped")
        study.optimize(objective, n_trials=3, callbacks=[recorder])
        proxy.stop()
        with caplog.at_level(logging.WARNING, logger="automl_meta.store"):
            study.optimize(objective, n_trials=3, callbacks=[recorder])
        assert len(study.trials) == 6 and caplog.text.count("waits in the spool") == 3
        assert len(recorder.spool) == 3
        proxy.start()
        study.optimize(objective, n_trials=1, callbacks=[recorder])  # the next record writes what waited
        assert len(recorder.spool) == 0
        assert sorted(e.trial_number for e in store.evaluations(study="dropped")) == list(range(7))
        store.close()
    finally:
        proxy.stop()
