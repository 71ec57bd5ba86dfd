"""Importing the finished trials of existing Optuna studies into the experience store."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ..exceptions import StoreError, TaskError
from ._backend import sqlite_file
from .identity import study_key
from .records import METAFEATURES_ATTR, TaskDescription
from .store import ExperienceStore


@dataclass(frozen=True)
class ImportReport:
    study: str
    added: int
    already_stored: int
    unfinished: int


def import_optuna(
    storage: str, store: ExperienceStore, *, study_name: str | None = None, task: TaskDescription | None = None
) -> list[ImportReport]:
    """Copy the complete, pruned and failed trials of Optuna studies into ``store``.

    A study's task comes from its user attributes (``automl_meta_metafeatures``, which
    :class:`~automl_meta.integrations.optuna.ExperienceRecorder` writes), or else from ``task``. A study is
    identified by its key (:func:`automl_meta.store.identity.study_key`, the same the recorder uses), not by
    its name: trials the store already has are skipped, so importing a study again, or importing one the
    recorder recorded, adds nothing. The source storage is only read; a SQLite storage file that does not
    exist is an error (Optuna would create an empty one).

    Examples
    --------
    >>> import tempfile, os, optuna
    >>> from sklearn.datasets import load_iris
    >>> from automl_meta.store import ExperienceStore, TaskDescription
    >>> from automl_meta.store.optuna_import import import_optuna
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> folder = tempfile.mkdtemp()
    >>> storage = "sqlite:///" + os.path.join(folder, "optuna.db")
    >>> study = optuna.create_study(study_name="old", storage=storage)
    >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    >>> store = ExperienceStore("sqlite:///" + os.path.join(folder, "experience.db"))
    >>> import_optuna(storage, store, task=TaskDescription.from_data(*load_iris(return_X_y=True)))
    [ImportReport(study='old', added=3, already_stored=0, unfinished=0)]
    """
    import optuna
    from optuna.trial import TrialState

    _check_source(storage)
    try:
        names = optuna.study.get_all_study_names(storage=storage)
    except Exception as exc:  # noqa: BLE001 - Optuna raises many kinds for a bad URL
        raise StoreError(f"Cannot open the Optuna storage {storage!r}: {exc}") from None
    if study_name is not None:
        if study_name not in names:
            raise StoreError(f"The Optuna storage has no study named {study_name!r}; it has: {', '.join(names)}.")
        names = [study_name]
    # Every study's task first: a study that cannot be placed stops the import before anything is written.
    studies = []
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        description = task
        if description is None:
            mf = study.user_attrs.get(METAFEATURES_ATTR)
            if mf is None:
                raise TaskError(
                    f"Study {name!r} does not say which dataset it tuned for (no "
                    f"{METAFEATURES_ATTR!r} user attribute); pass the dataset: --data FILE.csv "
                    "--target COLUMN."
                )
            description = TaskDescription.from_metafeatures(mf, name=name)
        studies.append((name, study, description))
    reports = []
    for name, study, description in studies:
        task_id = store.add_task(description)
        key = study_key(study)
        added = stored = unfinished = 0
        directions = [d.name for d in study.directions]
        for trial in study.get_trials(deepcopy=False):
            if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
                unfinished += 1
                continue
            duration = trial.duration.total_seconds() if trial.duration is not None else None
            if store.add_evaluation(
                task_id,
                trial.distributions,
                trial.params,
                trial.values,
                directions=directions,
                state=trial.state.name,
                study=name,
                trial_number=trial.number,
                duration_seconds=duration,
                study_key=key,
            ):
                added += 1
            else:
                stored += 1
        reports.append(ImportReport(name, added, stored, unfinished))
    return reports


def _check_source(storage: str) -> None:
    try:
        path = sqlite_file(sa.make_url(storage))
    except sa_exc.ArgumentError:
        return  # not a database URL: Optuna says what is wrong with it
    if path is not None and not path.is_file():
        raise StoreError(
            f"No Optuna storage at '{path}': the file does not exist. Check the path "
            "(sqlite:///relative/path.db or sqlite:////absolute/path.db)."
        )
