"""The store under faults: exact study names, any study name, clear errors, timeouts, a deleted file, the spool."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import pytest
import sqlalchemy as sa
from optuna.distributions import FloatDistribution
from sklearn.datasets import load_iris

from automl_meta.exceptions import StoreError
from automl_meta.store import ExperienceStore, TaskDescription, upgrade
from automl_meta.store.store import _engine, _migrate

SPACE = {"x": FloatDistribution(0.0, 1.0)}
TASK = TaskDescription.from_data(*load_iris(return_X_y=True), name="iris")
# Names Optuna accepts: case and trailing-space variants, Optuna's 512-character limit, NUL, emoji, newlines.
NAMES = ["Study", "study", "study ", "s" * 511 + "\N{SLIGHTLY SMILING FACE}", "nul\x00byte", "tab\tnew\nline"]


def _add(store: ExperienceStore, study: str, number: int, **kwargs) -> bool:
    return store.add_evaluation(
        store.add_task(TASK),
        SPACE,
        {"x": 0.5},
        [float(number)],
        directions=["MINIMIZE"],
        state="COMPLETE",
        study=study,
        trial_number=number,
        **kwargs,
    )


def _names_are_exact(url: str) -> None:
    store = ExperienceStore(url)
    for name in NAMES:
        assert _add(store, name, 0) and _add(store, name, 1)
        assert not _add(store, name, 1)  # the same trial of the same study: stored once
    for name in NAMES:
        evaluations = store.evaluations(study=name)
        assert [e.trial_number for e in evaluations] == [0, 1] and store.count_evaluations(study=name) == 2
        if "\x00" not in name:
            assert evaluations[0].study == name
    assert store.evaluations(study="nul\x00byte")[0].study == "nul\\x00byte"  # kept escaped for display
    assert store.count_evaluations(study="STUDY") == 0 and store.count_evaluations() == 2 * len(NAMES)
    # Two studies of one name are told apart by their keys.
    assert _add(store, "Study", 0, study_key="a" * 32) and store.count_evaluations(study="Study") == 3
    store.close()


def test_study_names_are_exact_and_any_name_fits_sqlite(sqlite_url):
    _names_are_exact(sqlite_url)


def test_study_names_are_exact_and_any_name_fits_server(server_url):
    _names_are_exact(server_url)


def _old_rows_stay_readable(url: str) -> None:
    from datetime import datetime

    engine = _engine(url, None)
    _migrate(engine, "0002")  # a store written by automl-meta before study keys
    now, json_columns = datetime(2024, 1, 1), ("metafeatures", "distributions", "params", "values", "directions")
    tables = {
        name: sa.table(name, *[sa.column(c, sa.JSON if c in json_columns else None) for c in columns])
        for name, columns in [
            ("automl_meta_tasks", ["fingerprint", "task_type", "n_rows", "n_features", "metafeatures", "created_at"]),
            ("automl_meta_search_spaces", ["signature", "distributions", "created_at"]),
            (
                "automl_meta_evaluations",
                [
                    "task_id",
                    "search_space_id",
                    "params",
                    "values",
                    "directions",
                    "state",
                    "study",
                    "trial_number",
                    "created_at",
                ],
            ),
        ]
    }
    with engine.begin() as c:
        c.execute(
            tables["automl_meta_tasks"]
            .insert()
            .values(fingerprint="f", task_type="regression", n_rows=1, n_features=1, metafeatures={}, created_at=now)
        )
        c.execute(tables["automl_meta_search_spaces"].insert().values(signature="s", distributions={}, created_at=now))
        for number, name in enumerate(["a", "A", "a ", "a"]):
            c.execute(
                tables["automl_meta_evaluations"]
                .insert()
                .values(
                    task_id=1,
                    search_space_id=1,
                    params={},
                    values=[1.0],
                    directions=["MINIMIZE"],
                    state="COMPLETE",
                    study=name,
                    trial_number=number,
                    created_at=now,
                )
            )
    engine.dispose()
    assert upgrade(url) == ("0002", "0003")
    store = ExperienceStore(url)
    assert [e.trial_number for e in store.evaluations(study="a")] == [0, 3]
    assert [e.trial_number for e in store.evaluations(study="A")] == [1]
    assert [e.trial_number for e in store.evaluations(study="a ")] == [2]
    # An old row keeps the key of its name: recording the same trial by name again adds nothing.
    assert not store.add_evaluation(
        1, {}, {}, [1.0], directions=["MINIMIZE"], state="COMPLETE", study="a", trial_number=3
    )
    store.close()


def test_old_rows_stay_readable_after_the_migration_sqlite(sqlite_url):
    _old_rows_stay_readable(sqlite_url)


def test_old_rows_stay_readable_after_the_migration_server(server_url):
    _old_rows_stay_readable(server_url)


def test_corrupt_and_truncated_sqlite_files_are_store_errors(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"garbage\.db is not a readable SQLite database.*corrupt or truncated"):
        ExperienceStore(f"sqlite:///{garbage}")
    good = tmp_path / "truncated.db"
    store = ExperienceStore(f"sqlite:///{good}")
    for i in range(200):
        _add(store, "s", i)
    store.close()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{good}{suffix}"):
            os.remove(f"{good}{suffix}")
    with open(good, "r+b") as f:
        f.truncate(os.path.getsize(good) // 2)
    with pytest.raises(StoreError, match="truncated.db is not a readable SQLite database"):
        ExperienceStore(f"sqlite:///{good}").evaluations()


def test_read_only_sqlite_store_is_a_store_error(tmp_path):
    path = tmp_path / "experience.db"
    ExperienceStore(f"sqlite:///{path}").close()
    store = ExperienceStore(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert store.count_evaluations() == 0  # reading works
    with pytest.raises(StoreError, match="is read-only.*Make the file and its folder writable"):
        store.add_task(TASK)


def test_a_deleted_sqlite_store_is_noticed_before_writing(tmp_path):
    path = tmp_path / "experience.db"
    store = ExperienceStore(f"sqlite:///{path}")
    assert _add(store, "s", 0)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    with pytest.raises(StoreError, match="experience.db was deleted while this process was using it"):
        _add(store, "s", 1)
    assert not path.exists()
    ExperienceStore(f"sqlite:///{path}").close()  # another file at the path now: still not the one opened
    with pytest.raises(StoreError, match="was replaced by another file"):
        _add(store, "s", 1)
    assert ExperienceStore(f"sqlite:///{path}").count_evaluations() == 0


@pytest.fixture
def silent_server():
    """A port on 127.0.0.1 that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted, stop = [], threading.Event()

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for s in accepted + [listener]:
        s.close()


@pytest.mark.parametrize(
    "scheme, query",
    [
        ("mysql+pymysql", ""),
        ("postgresql+psycopg", ""),
        ("mysql+pymysql", "?connect_timeout=1&read_timeout=1"),
        ("postgresql+psycopg", "?connect_timeout=2"),
    ],
)
def test_a_server_that_never_answers_times_out(silent_server, scheme, query):
    # Before the timeouts, MariaDB waited forever and PostgreSQL 130 s. The URL's settings win over timeout=.
    url = f"{scheme}://root@127.0.0.1:{silent_server}/x{query}"
    started = time.monotonic()
    with pytest.raises(StoreError, match="Cannot reach the store database"):
        ExperienceStore(url, timeout=1 if not query else 600)
    assert time.monotonic() - started < 30


def test_the_spool_is_bounded_and_flushes_once(tmp_path, caplog):
    from automl_meta.store import Spool, TrialRecord

    url = f"sqlite:///{tmp_path / 'experience.db'}"
    spool = Spool(url, directory=tmp_path / "spool", max_rows=3)
    assert len(spool) == 0 and not spool.path.exists()  # nothing failed: no file
    with caplog.at_level(logging.WARNING, logger="automl_meta.store"):
        for number in range(5):
            spool.put(TrialRecord(TASK, SPACE, {"x": 0.5}, [1.0], ["MINIMIZE"], "COMPLETE", "s", "k" * 32, number))
        spool.put(TrialRecord(TASK, SPACE, {"x": 0.5}, [1.0], ["MINIMIZE"], "COMPLETE", "s", "k" * 32, 4))
    assert len(spool) == 3 and "the 1 oldest waiting trials were dropped" in caplog.text
    store = ExperienceStore(url)
    assert _add(store, "s", 3, study_key="k" * 32)  # a flush that stopped after writing trial 3
    assert spool.flush(store) == 3 and len(spool) == 0 and spool.flush(store) == 0
    assert sorted(e.trial_number for e in store.evaluations(study="s")) == [2, 3, 4]
