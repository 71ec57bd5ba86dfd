"""The experience store: what past tuning runs learned, in one SQL database shared by every worker."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import sqlalchemy as sa
from optuna.distributions import BaseDistribution
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from ..exceptions import StoreError, StoreSchemaError
from .records import (EvaluationRecord, SearchSpaceRecord, TaskDescription, TaskRecord, decode_values,
                      distributions_from_json, encode_values, space_signature)
from .schema import VERSION_TABLE, ArtifactRow, EvaluationRow, SearchSpaceRow, TaskRow

__all__ = ["ExperienceStore", "default_url", "upgrade", "STATES"]

MIGRATIONS = Path(__file__).parent / "migrations"
STATES = ("COMPLETE", "PRUNED", "FAIL")
_DRIVERS = {"postgresql": ("psycopg2", "postgresql+psycopg", "psycopg[binary]"),
            "mysql": ("MySQLdb", "mysql+pymysql", "pymysql"),
            "mariadb": ("MySQLdb", "mariadb+pymysql", "pymysql")}


def default_url() -> str:
    """``$AUTOML_META_STORE`` if set, else a SQLite file ``experience.db`` in the user data directory.

    Examples
    --------
    >>> from automl_meta.store import default_url
    >>> default_url().startswith(("sqlite:///", "postgresql", "mysql"))
    True
    """
    env = os.environ.get("AUTOML_META_STORE")
    if env:
        return env
    from platformdirs import user_data_dir

    folder = Path(user_data_dir("automl-meta", appauthor=False))
    return f"sqlite:///{folder / 'experience.db'}"


def _alembic_config(connection: sa.Connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _head() -> str:
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)  # type: ignore[arg-type]
    return ScriptDirectory.from_config(config).get_current_head()


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(_alembic_config(None)).walk_revisions()}  # type: ignore


def _current_revision(connection: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _migrate(engine: sa.Engine, revision: str = "head") -> None:
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)


def _redacted(url: sa.URL | str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True) if not isinstance(url, sa.URL) \
        else url.render_as_string(hide_password=True)


def _engine(url: str, engine_kwargs: Mapping[str, Any] | None) -> sa.Engine:
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError:
        raise StoreError(f"{url!r} is not a database URL. Use sqlite:///PATH, postgresql+psycopg://USER@HOST/DB "
                         "or mysql+pymysql://USER@HOST/DB.") from None
    backend = parsed.get_backend_name()
    if backend in _DRIVERS and "+" not in parsed.drivername:
        default_module, ours, _ = _DRIVERS[backend]
        try:
            __import__(default_module)
        except ImportError:  # the plain scheme means SQLAlchemy's default driver; use the one we ship with
            parsed = parsed.set(drivername=ours)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        kwargs["connect_args"] = {"timeout": 60}
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    kwargs.update(engine_kwargs or {})
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except sa_exc.NoSuchModuleError:
        raise StoreError(f"Unknown store URL scheme {parsed.drivername!r} in {_redacted(parsed)}. Supported: "
                         "sqlite, postgresql (+psycopg), mysql/mariadb (+pymysql).") from None
    except ImportError as exc:
        hint = _DRIVERS.get(backend, (None, None, None))[2]
        extra = f" Install it with: pip install '{hint}'." if hint else ""
        raise StoreError(f"The database driver for {_redacted(parsed)} is not installed ({exc}).{extra}") from None
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        # Write-ahead logging: readers never block the writer, and several processes can record at once.
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def upgrade(url: str | None = None, revision: str = "head") -> tuple[str | None, str]:
    """Bring a store's schema up to date (creating it if the database is empty).

    Back up a shared store first. Returns the revisions before and after.

    Examples
    --------
    >>> import tempfile, os
    >>> from automl_meta.store import upgrade
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db")
    >>> upgrade(url)
    (None, '0002')
    """
    engine = _engine(url or default_url(), None)
    try:
        with _connect(engine) as connection:
            before = _current_revision(connection)
        if before is not None and before not in _known_revisions():
            raise StoreSchemaError(f"The store at {_redacted(engine.url)} has schema revision {before!r}, unknown to "
                                   "this automl-meta: it was created by a newer version. Upgrade automl-meta.")
        _migrate(engine, revision)
        with _connect(engine) as connection:
            return before, _current_revision(connection)
    finally:
        engine.dispose()


class _connect:
    """``engine.connect()`` that turns an unreachable database into a :class:`StoreError`."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def __enter__(self) -> sa.Connection:
        try:
            self.connection = self.engine.connect()
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            raise StoreError(f"Cannot reach the store database at {_redacted(self.engine.url)}: {reason}") from None
        return self.connection

    def __exit__(self, *exc) -> None:
        self.connection.close()


class ExperienceStore:
    """Tasks, search spaces, evaluations and artifacts in one SQL database.

    Parameters
    ----------
    url : str, optional
        A SQLAlchemy database URL: ``sqlite:///PATH`` (one machine), ``postgresql+psycopg://USER@HOST/DB``
        or ``mysql+pymysql://USER@HOST/DB`` (teams, many workers; the plain ``postgresql://`` and
        ``mysql://`` schemes use these drivers when SQLAlchemy's defaults are not installed). Defaults to
        :func:`default_url`. An empty database gets the current schema; a store of an older schema is
        refused with the command that upgrades it.
    engine_kwargs : dict, optional
        Passed to :func:`sqlalchemy.create_engine`.

    Raises
    ------
    StoreError
        Unknown URL scheme, missing driver, unreachable database.
    StoreSchemaError
        The store's schema is older or newer than this version of automl-meta expects.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn.datasets import load_iris
    >>> from optuna.distributions import FloatDistribution
    >>> from automl_meta.store import ExperienceStore, TaskDescription
    >>> store = ExperienceStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "experience.db"))
    >>> task_id = store.add_task(TaskDescription.from_data(*load_iris(return_X_y=True), name="iris"))
    >>> store.add_evaluation(task_id, {"lr": FloatDistribution(1e-4, 1.0, log=True)}, {"lr": 0.01}, [0.1],
    ...                      directions=["minimize"], state="COMPLETE", study="demo", trial_number=0)
    True
    >>> [(e.params, e.values) for e in store.evaluations()]
    [({'lr': 0.01}, [0.1])]
    """

    def __init__(self, url: str | None = None, *, engine_kwargs: Mapping[str, Any] | None = None) -> None:
        self.url = url or default_url()
        self._engine = _engine(self.url, engine_kwargs)
        self._open()

    def __repr__(self) -> str:
        return f"ExperienceStore({_redacted(self._engine.url)!r})"

    def __getstate__(self) -> dict[str, Any]:  # engines do not pickle; workers reconnect
        return {"url": self.url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"])

    # -- schema ----------------------------------------------------------------------------------------
    def _open(self) -> None:
        head = _head()
        for attempt in range(5):
            with _connect(self._engine) as connection:
                current = _current_revision(connection)
                has_tables = sa.inspect(connection).has_table(TaskRow.__tablename__)
            if current == head:
                return
            if current is None and not has_tables:
                try:
                    _migrate(self._engine)
                except (sa_exc.IntegrityError, sa_exc.OperationalError, sa_exc.ProgrammingError):
                    time.sleep(0.2 * (attempt + 1))  # another process is creating the same store
                continue
            if current in _known_revisions():
                raise StoreSchemaError(
                    f"The store at {_redacted(self._engine.url)} has schema revision {current}; this version of "
                    f"automl-meta needs {head}. Back it up, then upgrade it with:\n"
                    f"    automl-meta store upgrade '{_redacted(self._engine.url)}'")
            raise StoreSchemaError(
                f"The store at {_redacted(self._engine.url)} has schema revision {current!r}, unknown to this "
                "automl-meta (a newer version created it, or the tables are not an automl-meta store). "
                "Upgrade automl-meta.")
        raise StoreError(f"Could not create the store schema at {_redacted(self._engine.url)}.")

    @property
    def revision(self) -> str | None:
        """The schema revision of the database."""
        with _connect(self._engine) as connection:
            return _current_revision(connection)

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def _session(self) -> Session:
        return Session(self._engine, expire_on_commit=False)

    def _get_or_create(self, model, key: dict[str, Any], values: dict[str, Any]) -> int:
        for _ in range(5):
            with self._session() as session:
                found = session.scalar(sa.select(model.id).filter_by(**key))
                if found is not None:
                    return found
                row = model(**key, **values)
                session.add(row)
                try:
                    session.commit()
                    return row.id
                except sa_exc.IntegrityError:  # another worker inserted it first
                    session.rollback()
        raise StoreError(f"Could not insert into {model.__tablename__} at {_redacted(self._engine.url)}.")

    # -- writing ---------------------------------------------------------------------------------------
    def add_task(self, task: TaskDescription) -> int:
        """Store a task (once per fingerprint) and return its id."""
        return self._get_or_create(TaskRow, {"fingerprint": task.fingerprint}, {
            "name": task.name, "task_type": task.task_type, "n_rows": task.n_rows, "n_features": task.n_features,
            "n_classes": task.n_classes, "metafeatures": dict(task.metafeatures)})

    def add_search_space(self, distributions: Mapping[str, BaseDistribution]) -> int:
        """Store a search space (once per signature) and return its id."""
        signature, canonical = space_signature(distributions)
        return self._get_or_create(SearchSpaceRow, {"signature": signature}, {"distributions": canonical})

    def add_evaluation(self, task_id: int, distributions: Mapping[str, BaseDistribution], params: Mapping[str, Any],
                       values: Sequence[float] | None, *, directions: Sequence[str], state: str, study: str,
                       trial_number: int, duration_seconds: float | None = None) -> bool:
        """Store one finished trial; returns False if the store already has this study's trial."""
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}.")
        space_id = self.add_search_space(distributions)
        with self._session() as session:
            session.add(EvaluationRow(task_id=task_id, search_space_id=space_id, params=dict(params),
                                      values=encode_values(values), directions=[str(d) for d in directions],
                                      state=state, duration_seconds=duration_seconds, study=study,
                                      trial_number=int(trial_number)))
            try:
                session.commit()
            except sa_exc.IntegrityError:
                session.rollback()
                return False
        return True

    def add_artifact(self, name: str, kind: str, sha256: str, metrics: Mapping[str, float] | None = None,
                     task_id: int | None = None) -> int:
        """Store an artifact (once per name and sha256) and return its id."""
        return self._get_or_create(ArtifactRow, {"name": name, "sha256": sha256},
                                   {"kind": kind, "metrics": dict(metrics or {}), "task_id": task_id})

    # -- reading ---------------------------------------------------------------------------------------
    def tasks(self) -> list[TaskRecord]:
        """Every stored task, oldest first."""
        with self._session() as session:
            rows = session.scalars(sa.select(TaskRow).order_by(TaskRow.id)).all()
        return [TaskRecord(id=r.id, fingerprint=r.fingerprint, metafeatures=dict(r.metafeatures),
                           task_type=r.task_type, n_rows=r.n_rows, n_features=r.n_features, n_classes=r.n_classes,
                           name=r.name) for r in rows]

    def task_id(self, fingerprint: str) -> int | None:
        """The id of the task with this fingerprint, or None."""
        with self._session() as session:
            return session.scalar(sa.select(TaskRow.id).filter_by(fingerprint=fingerprint))

    def search_spaces(self) -> list[SearchSpaceRecord]:
        """Every stored search space."""
        with self._session() as session:
            rows = session.scalars(sa.select(SearchSpaceRow).order_by(SearchSpaceRow.id)).all()
        return [SearchSpaceRecord(r.id, r.signature, distributions_from_json(r.distributions)) for r in rows]

    def evaluations(self, task_id: int | Sequence[int] | None = None, *, states: Sequence[str] | None = None,
                    study: str | None = None) -> list[EvaluationRecord]:
        """Stored trials, optionally of some tasks, states or one study, in insertion order."""
        # Plain columns, not ORM objects, and each search space decoded once: a store holds many trials.
        columns = [EvaluationRow.id, EvaluationRow.task_id, EvaluationRow.search_space_id, EvaluationRow.params,
                   EvaluationRow.values, EvaluationRow.directions, EvaluationRow.state,
                   EvaluationRow.duration_seconds, EvaluationRow.study, EvaluationRow.trial_number]
        query = sa.select(*columns).order_by(EvaluationRow.id)
        if task_id is not None:
            ids = [task_id] if isinstance(task_id, int) else list(task_id)
            query = query.where(EvaluationRow.task_id.in_(ids))
        if states is not None:
            query = query.where(EvaluationRow.state.in_(list(states)))
        if study is not None:
            query = query.where(EvaluationRow.study == study)
        with self._session() as session:
            rows = session.execute(query).all()
            space_ids = sorted({row.search_space_id for row in rows})
            spaces = {i: distributions_from_json(d) for i, d in session.execute(
                sa.select(SearchSpaceRow.id, SearchSpaceRow.distributions).where(SearchSpaceRow.id.in_(space_ids)))
            } if space_ids else {}
        return [EvaluationRecord(
            id=row.id, task_id=row.task_id, search_space_id=row.search_space_id, params=dict(row.params),
            values=decode_values(row.values), directions=list(row.directions), state=row.state,
            duration_seconds=row.duration_seconds, study=row.study, trial_number=row.trial_number,
            distributions=spaces[row.search_space_id]) for row in rows]

    def count_evaluations(self, study: str | None = None) -> int:
        """How many trials the store holds (of one study, if given)."""
        query = sa.select(sa.func.count(EvaluationRow.id))
        if study is not None:
            query = query.where(EvaluationRow.study == study)
        with self._session() as session:
            return int(session.scalar(query))

    def artifacts(self) -> list[dict[str, Any]]:
        """Every stored artifact as a dict (id, task_id, name, kind, sha256, metrics)."""
        with self._session() as session:
            rows = session.scalars(sa.select(ArtifactRow).order_by(ArtifactRow.id)).all()
        return [{"id": r.id, "task_id": r.task_id, "name": r.name, "kind": r.kind, "sha256": r.sha256,
                 "metrics": dict(r.metrics)} for r in rows]
