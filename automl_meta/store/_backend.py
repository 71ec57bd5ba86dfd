"""Engines for the store: URL checks, drivers, timeouts, SQLite settings, and database errors as StoreError."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import parse_qs, urlparse

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ..exceptions import StoreError

if TYPE_CHECKING:
    from .store import ExperienceStore

_DRIVERS = {
    "postgresql": ("psycopg2", "postgresql+psycopg", "psycopg[binary]"),
    "mysql": ("MySQLdb", "mysql+pymysql", "pymysql"),
    "mariadb": ("MySQLdb", "mariadb+pymysql", "pymysql"),
}

#: Seconds to wait for a database server to accept a connection and answer its handshake.
CONNECT_TIMEOUT = 10.0
#: Seconds one statement may take (on SQLite: how long to wait for another process's lock).
STATEMENT_TIMEOUT = 120.0


def _redacted(url: sa.URL | str) -> str:
    return (url if isinstance(url, sa.URL) else sa.make_url(url)).render_as_string(hide_password=True)


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def store_error(exc: sa_exc.SQLAlchemyError, url: sa.URL | str, *, connecting: bool = False) -> StoreError:
    """A :class:`StoreError` that names the store, says what went wrong and what to do."""
    where, reason = _redacted(url), _reason(exc)
    lower = reason.lower()
    if "readonly database" in lower or "read-only" in lower:
        return StoreError(
            f"The store at {where} is read-only ({reason}). Make the file and its folder writable, "
            "or record into another store (store=URL or $AUTOML_META_STORE)."
        )
    if "not a database" in lower or "malformed" in lower or "file is encrypted" in lower:
        return StoreError(
            f"The store at {where} is not a readable SQLite database ({reason}): the file is corrupt "
            "or truncated. Restore it from a backup, or move it aside to start a new store."
        )
    if "database is locked" in lower:
        return StoreError(
            f"The store at {where} stayed locked by another process ({reason}). Retry later, or "
            "use a PostgreSQL or MariaDB store for many parallel workers."
        )
    if isinstance(exc, sa_exc.DataError):
        return StoreError(
            f"The store at {where} refused a value ({reason}). Please report this with the "
            "study and parameter names involved."
        )
    if connecting:
        return StoreError(f"Cannot reach the store database at {where}: {reason}")
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return StoreError(
            f"The store database at {where} failed or dropped the connection ({reason}). Check "
            "that the server is running and reachable, then retry."
        )
    return StoreError(f"The store at {where} failed: {reason}")


def sqlite_file(url: sa.URL) -> Path | None:
    """The file of a SQLite URL (also of a ``file:`` URI), or None for an in-memory database or another back end."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    database = url.database
    if database.startswith("file:"):
        parsed = urlparse(database)
        if parse_qs(parsed.query).get("mode") == ["memory"] or not parsed.path:
            return None
        database = parsed.path
    return Path(database).expanduser().absolute()


def _timeout_args(url: sa.URL, timeout: float, statement_timeout: float) -> dict[str, Any]:
    """Driver arguments for the timeouts; a setting the URL's query already has is left to the URL."""
    query, backend = url.query, url.get_backend_name()
    args: dict[str, Any] = {}
    if backend == "sqlite":
        if "timeout" not in query:
            args["timeout"] = statement_timeout
    elif backend == "postgresql":
        if "connect_timeout" not in query:
            args["connect_timeout"] = max(1, math.ceil(timeout))
        options = query.get("options") or ""
        options = options if isinstance(options, str) else " ".join(options)
        if "statement_timeout" not in options:
            args["options"] = f"{options} -c statement_timeout={int(statement_timeout * 1000)}".strip()
    elif backend in ("mysql", "mariadb"):
        if "connect_timeout" not in query:
            args["connect_timeout"] = max(1, math.ceil(timeout))
        # PyMySQL reads the server's greeting under read_timeout: the connect timeout first, see _mysql_timeouts.
        if "read_timeout" not in query:
            args["read_timeout"] = max(1, math.ceil(timeout))
        if "write_timeout" not in query:
            args["write_timeout"] = max(1, math.ceil(statement_timeout))
    return args


def _mysql_statement_timeout(seconds: float) -> Callable[[Any, Any], None]:
    def set_timeout(dbapi_connection: Any, _record: Any) -> None:
        # PyMySQL has no public setter; it applies _read_timeout before each read, so once connected a statement
        # may take statement_timeout while the handshake was bounded by the connect timeout.
        if hasattr(dbapi_connection, "_read_timeout"):
            dbapi_connection._read_timeout = max(1, math.ceil(seconds))

    return set_timeout


def make_engine(
    url: str,
    engine_kwargs: Mapping[str, Any] | None,
    *,
    timeout: float = CONNECT_TIMEOUT,
    statement_timeout: float = STATEMENT_TIMEOUT,
) -> sa.Engine:
    """An engine for a store URL, with our driver defaults and timeouts (the URL and ``engine_kwargs`` win)."""
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError:
        raise StoreError(
            f"{url!r} is not a database URL. Use sqlite:///PATH, postgresql+psycopg://USER@HOST/DB "
            "or mysql+pymysql://USER@HOST/DB."
        ) from None
    backend = parsed.get_backend_name()
    if backend in _DRIVERS and "+" not in parsed.drivername:
        default_module, ours, _ = _DRIVERS[backend]
        try:
            __import__(default_module)
        except ImportError:  # the plain scheme means SQLAlchemy's default driver; use the one we ship with
            parsed = parsed.set(drivername=ours)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    kwargs.update(engine_kwargs or {})
    kwargs["connect_args"] = {**_timeout_args(parsed, timeout, statement_timeout), **kwargs.get("connect_args", {})}
    path = sqlite_file(parsed)
    if path is not None and not str(parsed.database).startswith("file:"):
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except sa_exc.NoSuchModuleError:
        raise StoreError(
            f"Unknown store URL scheme {parsed.drivername!r} in {_redacted(parsed)}. Supported: "
            "sqlite, postgresql (+psycopg), mysql/mariadb (+pymysql)."
        ) from None
    except ImportError as exc:
        hint = _DRIVERS.get(backend, (None, None, None))[2]
        extra = f" Install it with: pip install '{hint}'." if hint else ""
        raise StoreError(f"The database driver for {_redacted(parsed)} is not installed ({exc}).{extra}") from None
    if path is not None:
        # Write-ahead logging: readers never block the writer, and several processes can record at once.
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    if (
        backend in ("mysql", "mariadb")
        and "read_timeout" not in parsed.query
        and "read_timeout" not in (engine_kwargs or {}).get("connect_args", {})
    ):
        sa.event.listen(engine, "connect", _mysql_statement_timeout(statement_timeout))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


class connect:
    """``engine.connect()`` that turns an unreachable or unreadable database into a :class:`StoreError`."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def __enter__(self) -> sa.Connection:
        try:
            self.connection = self.engine.connect()
        except sa_exc.DBAPIError as exc:
            raise store_error(exc, self.engine.url, connecting=True) from exc
        return self.connection

    def __exit__(self, *exc: object) -> None:
        self.connection.close()


class FileIdentity:
    """The (device, inode) of a SQLite store file, to notice the file being deleted or replaced while in use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.identity = self._current()

    def _current(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def check(self) -> None:
        """Raise :class:`StoreError` if the file at the path is gone or is another file than the one opened."""
        now = self._current()
        if now == self.identity:
            return
        what = "was deleted" if now is None else "was replaced by another file"
        raise StoreError(
            f"The store file {self.path} {what} while this process was using it; nothing more is "
            "written to it, so that no trial goes into a file nobody can read. Restore the file or "
            "start a new process (which opens or creates the store at that path); trials recorded "
            "meanwhile by ExperienceRecorder wait in its spool and are written then."
        )


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


_P = ParamSpec("_P")
_R = TypeVar("_R")


def guarded(method: Callable[Concatenate[ExperienceStore, _P], _R]) -> Callable[Concatenate[ExperienceStore, _P], _R]:
    """Database errors of a store method become a :class:`StoreError` naming the store and what to do."""

    @functools.wraps(method)
    def wrapper(self: ExperienceStore, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sa_exc.SQLAlchemyError as exc:
            raise store_error(exc, self._engine.url) from exc

    return wrapper
