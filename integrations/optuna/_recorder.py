"""ExperienceRecorder: a study callback that records every finished trial in the experience store."""

from __future__ import annotations

import logging
import os
import threading
import weakref

from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from automl_meta.store import (
    ExperienceStore,
    Spool,
    TrialRecord,
    record_or_spool,
    study_key,
)
from automl_meta.store.records import METAFEATURES_ATTR

from ._task import TaskLike, _as_store, _as_task

_logger = logging.getLogger("automl_meta.integrations.optuna")


class ExperienceRecorder:
    """A study callback that records every finished trial in the experience store.

    Recording never stops tuning: when the store cannot take a trial (server down or dropped, read-only or
    deleted SQLite file, ...), a warning says which trial was not recorded and why, and the trial waits in a
    local spool (:class:`automl_meta.store.Spool`) that the next successful record writes first.

    Parameters
    ----------
    store : str or ExperienceStore, optional
        Where to record (defaults to the default store).
    task : (X, y), dict or TaskDescription
        The dataset the study tunes for (or its meta-features). Its meta-features are also saved in the
        study's user attributes (``automl_meta_metafeatures``), so ``automl-meta store import-optuna``
        can identify the task later.
    strict : bool
        Raise the store's error (a :class:`~automl_meta.exceptions.StoreError`) instead of spooling.
    spool_dir : path, optional
        Folder of the spool file (default ``$AUTOML_META_SPOOL_DIR``, else the user data directory).
    max_spooled : int
        At most this many trials wait in the spool; beyond it the oldest are dropped with a warning.

    Notes
    -----
    Trials are stored by study key and trial number (:func:`automl_meta.store.study_key`, kept in the
    study's user attribute ``automl_meta_study_key``), so two studies of the same name never mix, parallel
    workers of one study agree, and ``import-optuna`` of a recorded study adds nothing.

    Examples
    --------
    >>> import tempfile, os, optuna
    >>> from sklearn.datasets import load_iris
    >>> from automl_meta.integrations.optuna import ExperienceRecorder
    >>> from automl_meta.store import ExperienceStore
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> store = ExperienceStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "experience.db"))
    >>> study = optuna.create_study()
    >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5,
    ...                callbacks=[ExperienceRecorder(store=store, task=load_iris(return_X_y=True))])
    >>> store.count_evaluations(study=study.study_name)
    5
    """

    def __init__(
        self,
        *,
        store: str | ExperienceStore | None = None,
        task: TaskLike,
        strict: bool = False,
        spool_dir: str | os.PathLike | None = None,
        max_spooled: int = 10_000,
    ) -> None:
        self._store = _as_store(store)
        description = _as_task(task)
        if description is None:
            raise ValueError("ExperienceRecorder needs the task the study tunes for: (X, y) or its meta-features.")
        self._task = description
        self._strict = bool(strict)
        self._spool = Spool(self._store.url, directory=spool_dir, max_rows=max_spooled)
        self._lock = threading.Lock()
        self._keys: weakref.WeakKeyDictionary[Study, str] = weakref.WeakKeyDictionary()

    @property
    def store(self) -> ExperienceStore:
        return self._store

    @property
    def spool(self) -> Spool:
        """Where trials wait while the store cannot take them."""
        return self._spool

    def flush(self) -> int:
        """Write the trials waiting in the spool to the store now; returns how many were written."""
        return self._spool.flush(self._store)

    def _study_key(self, study: Study) -> str:
        with self._lock:  # one Study object per optimize() call; keyed by object, so same-named studies differ
            key = self._keys.get(study)
            if key is None:
                if METAFEATURES_ATTR not in study.user_attrs:
                    study.set_user_attr(METAFEATURES_ATTR, self._task.metafeatures)
                key = self._keys[study] = study_key(study, write=True)
            return key

    def __call__(self, study: Study, trial: FrozenTrial) -> None:
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            return
        try:
            key = self._study_key(study)
        except Exception as exc:
            if self._strict:
                raise
            _logger.warning(
                "Trial %d of study %r was not recorded in the store: its study attributes could not be "
                "read or written in the Optuna storage (%s).",
                trial.number,
                study.study_name,
                exc,
            )
            return
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        record = TrialRecord(
            self._task,
            trial.distributions,
            trial.params,
            trial.values,
            [d.name for d in study.directions],
            trial.state.name,
            study.study_name,
            key,
            trial.number,
            duration,
        )
        record_or_spool(self._store, self._spool, record, strict=self._strict)
