"""Fault injection: 4 recording workers while the store's connections are dropped twice and a worker is killed.

Every finished trial of the surviving workers ends up in the store (after the spool is flushed), none twice,
and the study never stops. The Optuna storage is a database of its own on the same PostgreSQL server, so
that only the store's connections are dropped.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
import sqlalchemy as sa

from automl_meta.store import STUDY_KEY_ATTR, ExperienceStore, Spool

WORKERS, TRIALS, VICTIM = 4, 50, 3
ADMIN = os.environ.get("AUTOML_META_TEST_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def databases():
    """Two fresh PostgreSQL databases (Optuna storage, store) and an admin engine (dropped afterwards)."""
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    names = [f"automl_meta_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    try:
        with admin.connect() as c:
            for name in names:
                c.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL server is unreachable: {str(exc.orig).splitlines()[0]}")
    yield [sa.make_url(ADMIN).set(database=n).render_as_string(hide_password=False) for n in names], admin, names[1]
    with admin.connect() as c:
        for name in names:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def _drop_store_connections(admin: sa.Engine, database: str, seconds: float) -> None:
    """Kill every connection to the store database and refuse new ones for a while (a server restart)."""
    with admin.connect() as c:
        c.execute(sa.text(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false"))
        c.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"
            ),
            {"d": database},
        )
        time.sleep(seconds)
        c.execute(sa.text(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true"))


def _wait(condition, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.25)


def test_recording_survives_dropped_connections_and_a_killed_worker(databases, tmp_path):
    (storage_url, store_url), admin, store_db = databases
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ExperienceStore(store_url).close()  # schema created once, before the workers
    study = optuna.create_study(study_name="faults", storage=storage_url)

    def finished(worker: int | None = None) -> int:
        return sum(
            t.state.is_finished() and (worker is None or t.user_attrs.get("worker") == worker)
            for t in study.get_trials(deepcopy=False)
        )

    here = str(pathlib.Path(__file__).parent)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from _faults import recording_worker; "
        "recording_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))"
    )
    env = {**os.environ, "AUTOML_META_SPOOL_DIR": str(tmp_path / "spool")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, here, storage_url, store_url, str(w), str(TRIALS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for w in range(WORKERS)
    ]
    try:
        _wait(lambda: all(finished(w) >= 3 for w in range(WORKERS)))
        _drop_store_connections(admin, store_db, 1.0)
        _wait(lambda: finished(VICTIM) >= 20)
        procs[VICTIM].send_signal(signal.SIGKILL)
        _wait(lambda: finished() >= 130)
        _drop_store_connections(admin, store_db, 1.0)
        errors = {}
        for w, p in enumerate(procs):
            _, errors[w] = p.communicate(timeout=300)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[VICTIM].returncode == -signal.SIGKILL
    survivors = [w for w in range(WORKERS) if w != VICTIM]
    for w in survivors:
        assert procs[w].returncode == 0, errors[w]
        assert finished(w) == TRIALS  # the study never stopped
    assert sum(errors[w].count("waits in the spool") for w in survivors) >= 1  # the drops did hit recording

    store = ExperienceStore(store_url)
    Spool(store_url, directory=tmp_path / "spool").flush(store)  # what the last drop left waiting
    assert len(Spool(store_url, directory=tmp_path / "spool")) == 0
    evaluations = store.evaluations(study="faults")
    numbers = [e.trial_number for e in evaluations]
    assert len(numbers) == len(set(numbers))  # none twice
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    survivors_trials = {n for n, t in trials.items() if t.state.is_finished() and t.user_attrs["worker"] != VICTIM}
    assert survivors_trials <= set(numbers)  # none of the survivors' trials lost
    for e in evaluations:
        assert trials[e.trial_number].state.is_finished() and e.params == trials[e.trial_number].params
    assert {e.study_key for e in evaluations} == {study.user_attrs[STUDY_KEY_ATTR]}  # all workers agreed
    store.close()
