"""The experience store: what past tuning runs learned, in one SQL database shared by every worker."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from ..exceptions import StoreError, StoreSchemaError
from ._backend import (
    CONNECT_TIMEOUT,
    STATEMENT_TIMEOUT,
    FileIdentity,
    _redacted,
    connect,
    default_url,
    guarded,
    make_engine,
    sqlite_file,
    store_error,
)
from .identity import STUDY_NAME_WIDTH, display_name, name_hash
from .migration import _current_revision, _head, _known_revisions, _migrate, upgrade
from .records import (
    EvaluationRecord,
    SearchSpaceRecord,
    TaskDescription,
    TaskRecord,
    TrialRecord,
    decode_values,
    distributions_from_json,
    encode_values,
    space_signature,
)
from .schema import ArtifactRow, EvaluationRow, SearchSpaceRow, TaskRow

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = ["ExperienceStore", "default_url", "upgrade", "STATES"]

STATES = ("COMPLETE", "PRUNED", "FAIL")
_engine = make_engine  # the name the tests and older callers use
# The columns an EvaluationRecord is read from, named like its fields.
_EVALUATION_COLUMNS = (
    EvaluationRow.id,
    EvaluationRow.task_id,
    EvaluationRow.search_space_id,
    EvaluationRow.params,
    EvaluationRow.values,
    EvaluationRow.directions,
    EvaluationRow.state,
    EvaluationRow.duration_seconds,
    EvaluationRow.study,
    EvaluationRow.trial_number,
    EvaluationRow.study_key,
)
_connect = connect


def _evaluation_record(row: sa.Row[Any], spaces: Mapping[int, dict[str, BaseDistribution]]) -> EvaluationRecord:
    fields: dict[str, Any] = row._asdict()
    fields.update(params=dict(row.params), values=decode_values(row.values), directions=list(row.directions))
    return EvaluationRecord(**fields, distributions=spaces[row.search_space_id])


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
    timeout : float
        Seconds to wait for a database server to accept a connection and answer (default 10).
    statement_timeout : float
        Seconds one statement may take (default 120): PostgreSQL's ``statement_timeout``, PyMySQL's read and
        write timeouts, SQLite's wait for another process's lock. Settings in the URL's query
        (``connect_timeout``, ``options=-c statement_timeout=...``, ``read_timeout``, ``timeout``) win.
    engine_kwargs : dict, optional
        Passed to :func:`sqlalchemy.create_engine`.

    Raises
    ------
    StoreError
        Unknown URL scheme, missing driver, unreachable, silent, corrupt or read-only database, and any
        later database failure (every method raises it, never a raw SQLAlchemy error). A SQLite store file
        deleted or replaced while in use is refused before each write.
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

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = CONNECT_TIMEOUT,
        statement_timeout: float = STATEMENT_TIMEOUT,
        engine_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url or default_url()
        self._settings = {"timeout": timeout, "statement_timeout": statement_timeout, "engine_kwargs": engine_kwargs}
        self._engine = _engine(self.url, engine_kwargs, timeout=timeout, statement_timeout=statement_timeout)
        self._open()
        path = sqlite_file(self._engine.url)
        self._file = FileIdentity(path) if path is not None else None

    def __repr__(self) -> str:
        return f"ExperienceStore({_redacted(self._engine.url)!r})"

    def __getstate__(self) -> dict[str, Any]:  # engines do not pickle; workers reconnect
        return {"url": self.url, **self._settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, state.pop("url"), **state)

    # -- schema ----------------------------------------------------------------------------------------
    @guarded
    def _open(self) -> None:
        head, failure = _head(), None
        for attempt in range(5):
            with _connect(self._engine) as connection:
                current = _current_revision(connection)
                has_tables = sa.inspect(connection).has_table(TaskRow.__tablename__)
            if current == head:
                return
            if current is None and not has_tables:
                try:
                    _migrate(self._engine)
                except (sa_exc.IntegrityError, sa_exc.OperationalError, sa_exc.ProgrammingError) as exc:
                    failure = exc
                    time.sleep(0.2 * (attempt + 1))  # another process is creating the same store
                continue
            if current in _known_revisions():
                raise StoreSchemaError(
                    f"The store at {_redacted(self._engine.url)} has schema revision {current}; this version of "
                    f"automl-meta needs {head}. Back it up, then upgrade it with:\n"
                    f"    automl-meta store upgrade '{_redacted(self._engine.url)}'"
                )
            raise StoreSchemaError(
                f"The store at {_redacted(self._engine.url)} has schema revision {current!r}, unknown to this "
                "automl-meta (a newer version created it, or the tables are not an automl-meta store). "
                "Upgrade automl-meta."
            )
        if failure is not None:
            raise store_error(failure, self._engine.url) from failure
        raise StoreError(f"Could not create the store schema at {_redacted(self._engine.url)}.")

    @property
    @guarded
    def revision(self) -> str | None:
        """The schema revision of the database."""
        with _connect(self._engine) as connection:
            return _current_revision(connection)

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def _session(self) -> Session:
        return Session(self._engine, expire_on_commit=False)

    def _before_write(self) -> None:
        if self._file is not None:
            self._file.check()  # writing into a deleted file would lose everything without a word

    def _get_or_create(
        self, model: type[TaskRow | SearchSpaceRow | ArtifactRow], key: dict[str, Any], values: dict[str, Any]
    ) -> int:
        self._before_write()
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
    @guarded
    def add_task(self, task: TaskDescription) -> int:
        """Store a task (once per fingerprint) and return its id."""
        name = None if task.name is None else display_name(task.name, 255)
        return self._get_or_create(
            TaskRow,
            {"fingerprint": task.fingerprint},
            {
                "name": name,
                "task_type": task.task_type,
                "n_rows": task.n_rows,
                "n_features": task.n_features,
                "n_classes": task.n_classes,
                "metafeatures": dict(task.metafeatures),
            },
        )

    @guarded
    def add_search_space(self, distributions: Mapping[str, BaseDistribution]) -> int:
        """Store a search space (once per signature) and return its id."""
        signature, canonical = space_signature(distributions)
        return self._get_or_create(SearchSpaceRow, {"signature": signature}, {"distributions": canonical})

    @guarded
    def add_evaluation(
        self,
        task_id: int,
        distributions: Mapping[str, BaseDistribution],
        params: Mapping[str, Any],
        values: Sequence[float] | None,
        *,
        directions: Sequence[str],
        state: str,
        study: str,
        trial_number: int,
        duration_seconds: float | None = None,
        study_key: str | None = None,
    ) -> bool:
        """Store one finished trial; returns False if the store already has this study's trial.

        A trial is identified by ``study_key`` (see :func:`automl_meta.store.identity.study_key`) and its
        number; without a key, by the study's exact name.
        """
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}.")
        space_id = self.add_search_space(distributions)
        key = study_key or name_hash(study)
        self._before_write()
        with self._session() as session:
            session.add(
                EvaluationRow(
                    task_id=task_id,
                    search_space_id=space_id,
                    params=dict(params),
                    values=encode_values(values),
                    directions=[str(d) for d in directions],
                    state=state,
                    duration_seconds=duration_seconds,
                    study=display_name(study, STUDY_NAME_WIDTH),
                    study_hash=name_hash(study),
                    study_key=key,
                    trial_number=int(trial_number),
                )
            )
            try:
                session.commit()
            except sa_exc.IntegrityError:
                session.rollback()
                if (
                    session.scalar(sa.select(EvaluationRow.id).filter_by(study_key=key, trial_number=int(trial_number)))
                    is None
                ):
                    raise  # not a duplicate (a task or search space that vanished): an error, not "already stored"
                return False
        return True

    def record(self, trial: TrialRecord) -> bool:
        """Store one finished trial with its task; returns False if the store already has it."""
        task_id = self.add_task(trial.task)
        return self.add_evaluation(
            task_id,
            trial.distributions,
            trial.params,
            trial.values,
            directions=trial.directions,
            state=trial.state,
            study=trial.study,
            trial_number=trial.trial_number,
            duration_seconds=trial.duration_seconds,
            study_key=trial.study_key,
        )

    @guarded
    def add_artifact(
        self, name: str, kind: str, sha256: str, metrics: Mapping[str, float] | None = None, task_id: int | None = None
    ) -> int:
        """Store an artifact (once per name and sha256) and return its id."""
        return self._get_or_create(
            ArtifactRow,
            {"name": name, "sha256": sha256},
            {"kind": kind, "metrics": dict(metrics or {}), "task_id": task_id},
        )

    # -- reading ---------------------------------------------------------------------------------------
    @guarded
    def tasks(self) -> list[TaskRecord]:
        """Every stored task, oldest first."""
        with self._session() as session:
            rows = session.scalars(sa.select(TaskRow).order_by(TaskRow.id)).all()
        return [
            TaskRecord(
                id=r.id,
                fingerprint=r.fingerprint,
                metafeatures=dict(r.metafeatures),
                task_type=r.task_type,
                n_rows=r.n_rows,
                n_features=r.n_features,
                n_classes=r.n_classes,
                name=r.name,
            )
            for r in rows
        ]

    @guarded
    def task_id(self, fingerprint: str) -> int | None:
        """The id of the task with this fingerprint, or None."""
        with self._session() as session:
            return session.scalar(sa.select(TaskRow.id).filter_by(fingerprint=fingerprint))

    @guarded
    def search_spaces(self) -> list[SearchSpaceRecord]:
        """Every stored search space."""
        with self._session() as session:
            rows = session.scalars(sa.select(SearchSpaceRow).order_by(SearchSpaceRow.id)).all()
        return [SearchSpaceRecord(r.id, r.signature, distributions_from_json(r.distributions)) for r in rows]

    @guarded
    def evaluations(
        self,
        task_id: int | Sequence[int] | None = None,
        *,
        states: Sequence[str] | None = None,
        study: str | None = None,
    ) -> list[EvaluationRecord]:
        """Stored trials, optionally of some tasks, states or studies of one exact name, in insertion order."""
        # Plain columns, not ORM objects, and each search space decoded once: a store holds many trials.
        query = sa.select(*_EVALUATION_COLUMNS).order_by(EvaluationRow.id)
        if task_id is not None:
            ids = [task_id] if isinstance(task_id, int) else list(task_id)
            query = query.where(EvaluationRow.task_id.in_(ids))
        if states is not None:
            query = query.where(EvaluationRow.state.in_(list(states)))
        if study is not None:
            query = query.where(EvaluationRow.study_hash == name_hash(study))
        with self._session() as session:
            rows = session.execute(query).all()
            space_ids = sorted({row.search_space_id for row in rows})
            spaces_query = sa.select(SearchSpaceRow.id, SearchSpaceRow.distributions)
            found = session.execute(spaces_query.where(SearchSpaceRow.id.in_(space_ids))).all() if space_ids else []
            spaces = {i: distributions_from_json(d) for i, d in found}
        return [_evaluation_record(row, spaces) for row in rows]

    @guarded
    def count_evaluations(self, study: str | None = None) -> int:
        """How many trials the store holds (of the studies of one exact name, if given)."""
        query = sa.select(sa.func.count(EvaluationRow.id))
        if study is not None:
            query = query.where(EvaluationRow.study_hash == name_hash(study))
        with self._session() as session:
            count = session.scalar(query)
        assert count is not None  # COUNT always returns one row
        return int(count)

    @guarded
    def artifacts(self) -> list[dict[str, Any]]:
        """Every stored artifact as a dict (id, task_id, name, kind, sha256, metrics)."""
        with self._session() as session:
            rows = session.scalars(sa.select(ArtifactRow).order_by(ArtifactRow.id)).all()
        return [
            {
                "id": r.id,
                "task_id": r.task_id,
                "name": r.name,
                "kind": r.kind,
                "sha256": r.sha256,
                "metrics": dict(r.metrics),
            }
            for r in rows
        ]
