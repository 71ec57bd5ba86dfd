"""A local spool for trials a store could not take: recording never stops tuning, and loses nothing it can keep.

When a write to the store fails (server down or dropped, read-only or deleted SQLite file, a lock held too
long), :func:`record_or_spool` keeps the trial in a spool, a small SQLite file on the local disk, and logs a
warning saying what was not recorded and why. The next successful write flushes the spool first. Flushing is
idempotent: the store refuses a trial it already has, so a flush interrupted half-way (or run by two workers
at once) writes nothing twice. The spool is bounded (``max_rows``, oldest dropped with a warning).

One spool per store: ``$AUTOML_META_SPOOL_DIR`` or the user data directory's ``spool/`` folder holds a file
named after the store's URL (its absolute path for SQLite), which every process recording into that store
shares, so trials spooled by a process that dies are written by the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..exceptions import StoreError
from ._backend import _redacted, sqlite_file
from .records import TrialRecord

if TYPE_CHECKING:
    from .store import ExperienceStore

__all__ = ["Spool", "record_or_spool", "SPOOL_DIR_ENV"]

#: Environment variable naming the folder of spool files (default: the user data directory's ``spool/``).
SPOOL_DIR_ENV = "AUTOML_META_SPOOL_DIR"
_logger = logging.getLogger("automl_meta.store")


def _spool_dir(directory: str | os.PathLike | None) -> Path:
    if directory is not None:
        return Path(directory)
    if os.environ.get(SPOOL_DIR_ENV):
        return Path(os.environ[SPOOL_DIR_ENV])
    from platformdirs import user_data_dir

    return Path(user_data_dir("automl-meta", appauthor=False)) / "spool"


class Spool:
    """Trials waiting to be written to one store, in a SQLite file shared by every process.

    Parameters
    ----------
    store_url : str
        The store the trials are for.
    directory : path, optional
        Folder of the spool file (default ``$AUTOML_META_SPOOL_DIR``, else the user data directory).
    max_rows : int
        At most this many trials wait; beyond it the oldest are dropped with a warning.

    Examples
    --------
    >>> import tempfile, os
    >>> from optuna.distributions import FloatDistribution
    >>> from sklearn.datasets import load_iris
    >>> from automl_meta.store import ExperienceStore, TaskDescription
    >>> from automl_meta.store.records import TrialRecord
    >>> from automl_meta.store.spool import Spool
    >>> folder = tempfile.mkdtemp()
    >>> url = "sqlite:///" + os.path.join(folder, "experience.db")
    >>> spool = Spool(url, directory=folder)
    >>> task = TaskDescription.from_data(*load_iris(return_X_y=True))
    >>> spool.put(TrialRecord(task, {"x": FloatDistribution(0, 1)}, {"x": 0.5}, [0.1], ["MINIMIZE"], "COMPLETE",
    ...                       "demo", "ab" * 16, 0))
    >>> len(spool), spool.flush(ExperienceStore(url)), len(spool)
    (1, 1, 0)
    """

    def __init__(self, store_url: str, *, directory: str | os.PathLike | None = None, max_rows: int = 10_000) -> None:
        url = sa.make_url(store_url)
        path = sqlite_file(url)
        identity = str(path) if path is not None else _redacted(url)
        self.store = _redacted(url)
        self.max_rows = int(max_rows)
        self.path = _spool_dir(directory) / f"{hashlib.sha256(identity.encode()).hexdigest()[:20]}.sqlite"
        self._ready = False

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r}, store={self.store!r})"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: each statement is its own transaction, so a deleted row stays deleted if a flush stops.
        connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        if not self._ready:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "study_key TEXT NOT NULL, trial_number INTEGER NOT NULL, record TEXT NOT NULL, "
                "spooled_at REAL NOT NULL, UNIQUE (study_key, trial_number))"
            )
            connection.execute("CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT)")
            connection.execute("INSERT OR IGNORE INTO info VALUES ('store', ?)", (self.store,))
            self._ready = True
        return connection

    def __len__(self) -> int:
        if not self.path.exists():  # the common case: nothing ever failed, and no file is made
            return 0
        with contextlib.closing(self._connect()) as connection:
            return int(connection.execute("SELECT count(*) FROM spool").fetchone()[0])

    def put(self, trial: TrialRecord) -> None:
        """Keep a trial (once per study key and trial number); drop the oldest beyond ``max_rows``."""
        with contextlib.closing(self._connect()) as connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(
                "INSERT OR IGNORE INTO spool (study_key, trial_number, record, spooled_at) VALUES (?, ?, ?, ?)",
                (trial.study_key, trial.trial_number, trial.to_json(), time.time()),
            )
            (count,) = connection.execute("SELECT count(*) FROM spool").fetchone()
            excess = count - self.max_rows
            if excess > 0:
                connection.execute(
                    "DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?)", (excess,)
                )
            connection.execute("COMMIT")
        if excess > 0:
            _logger.warning(
                "The spool %s of the store %s is full (%d trials): the %d oldest waiting trials were "
                "dropped. Make the store writable again so that the spool can be written.",
                self.path,
                self.store,
                self.max_rows,
                excess,
            )

    def flush(self, store: ExperienceStore) -> int:
        """Write every waiting trial to ``store`` (an :class:`ExperienceStore`), oldest first.

        Returns how many the store took (a trial it already had counts as written, and leaves the spool).
        A store error stops the flush and is raised; the trials not yet written keep waiting.
        """
        if not self.path.exists():
            return 0
        with contextlib.closing(self._connect()) as connection:
            rows = connection.execute("SELECT id, record FROM spool ORDER BY id").fetchall()
            written = 0
            for row_id, text in rows:
                try:
                    trial = TrialRecord.from_json(text)
                except (ValueError, KeyError, TypeError) as exc:
                    _logger.warning("Dropped an unreadable trial from the spool %s (%s).", self.path, exc)
                else:
                    store.record(trial)  # False (already stored) is fine: an earlier flush got that far
                    written += 1
                connection.execute("DELETE FROM spool WHERE id = ?", (row_id,))
        return written


def record_or_spool(store: ExperienceStore, spool: Spool, trial: TrialRecord, *, strict: bool = False) -> bool:
    """Write the spool's waiting trials and then ``trial`` to ``store``; on a store error, spool ``trial``.

    Returns True if ``trial`` is in the store now. With ``strict=True`` a store error is raised instead.
    A warning says what was not recorded and why, and where it waits.
    """
    try:
        try:
            spool.flush(store)
        except (sqlite3.Error, OSError) as exc:  # an unusable spool must not stop recording either
            _logger.warning("Could not read the spool %s (%s); writing to the store directly.", spool.path, exc)
        store.record(trial)
        return True
    except StoreError as exc:
        if strict:
            raise
        reason = exc
    what = f"Trial {trial.trial_number} of study {trial.study!r} was not recorded in the store {spool.store}"
    try:
        spool.put(trial)
    except (sqlite3.Error, OSError) as exc:
        _logger.warning(
            "%s, and is lost: the spool %s cannot be written either (%s). Reason: %s", what, spool.path, exc, reason
        )
        return False
    _logger.warning(
        "%s; it waits in the spool %s and is written with the next trial recorded there. Reason: %s",
        what,
        spool.path,
        reason,
    )
    return False
