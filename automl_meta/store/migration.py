"""Schema revisions of a store: creating and upgrading its tables with Alembic (``migrations/``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ..exceptions import StoreSchemaError
from ._backend import CONNECT_TIMEOUT, _redacted, connect, default_url, make_engine, store_error
from .schema import VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def _alembic_config(connection: sa.Connection | None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


# The newest revision of ``migrations/versions`` (a test checks it against Alembic's own answer): opening a
# store that is up to date then needs no Alembic import, which costs most of a second.
HEAD = "0003"


def _head() -> str:
    return HEAD


def _alembic_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(None)).get_current_head()
    assert head is not None  # the migrations shipped in MIGRATIONS have one head
    return head


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(_alembic_config(None)).walk_revisions()}


def _current_revision(connection: sa.Connection) -> str | None:
    """The database's schema revision, read from Alembic's version table with plain SQL (None: no schema)."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    table = sa.table(VERSION_TABLE, sa.column("version_num"))
    revisions = connection.execute(sa.select(table.c.version_num)).scalars().all()
    if len(revisions) > 1:
        raise StoreSchemaError(
            f"The store has several schema revisions {sorted(revisions)}; it was not made by automl-meta."
        )
    return revisions[0] if revisions else None


def _migrate(engine: sa.Engine, revision: str = "head") -> None:
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)


def upgrade(
    url: str | None = None, revision: str = "head", *, timeout: float = CONNECT_TIMEOUT
) -> tuple[str | None, str | None]:
    """Bring a store's schema up to date (creating it if the database is empty).

    Back up a shared store first. Returns the revisions before and after. Statements may take up to an
    hour here (a migration rewrites tables); ``timeout`` bounds connecting.

    Examples
    --------
    >>> import tempfile, os
    >>> from automl_meta.store import upgrade
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db")
    >>> upgrade(url)
    (None, '0003')
    """
    engine = make_engine(url or default_url(), None, timeout=timeout, statement_timeout=3600.0)
    try:
        with connect(engine) as connection:
            before = _current_revision(connection)
        if before is not None and before not in _known_revisions():
            raise StoreSchemaError(
                f"The store at {_redacted(engine.url)} has schema revision {before!r}, unknown to "
                "this automl-meta: it was created by a newer version. Upgrade automl-meta."
            )
        try:
            _migrate(engine, revision)
        except sa_exc.SQLAlchemyError as exc:
            raise store_error(exc, engine.url) from exc
        with connect(engine) as connection:
            return before, _current_revision(connection)
    finally:
        engine.dispose()
