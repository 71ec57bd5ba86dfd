"""The experience store: tasks, search spaces, evaluations and artifacts of past tuning runs.

One SQL database (SQLite by default, PostgreSQL or MariaDB/MySQL for teams) whose schema is managed
by Alembic migrations shipped with the package. The Optuna integration reads it to warm-start new
studies and grows it with every finished trial.

Examples
--------
>>> import tempfile, os
>>> from automl_meta.store import ExperienceStore
>>> store = ExperienceStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "experience.db"))
>>> store.revision, store.count_evaluations()
('0003', 0)
"""

from .identity import STUDY_KEY_ATTR, study_key
from .optuna_import import ImportReport, import_optuna
from .records import METAFEATURES_ATTR, EvaluationRecord, SearchSpaceRecord, TaskDescription, TaskRecord, TrialRecord
from .spool import SPOOL_DIR_ENV, Spool, record_or_spool
from .store import STATES, ExperienceStore, default_url, upgrade

__all__ = [
    "ExperienceStore",
    "TaskDescription",
    "TaskRecord",
    "SearchSpaceRecord",
    "EvaluationRecord",
    "TrialRecord",
    "default_url",
    "upgrade",
    "import_optuna",
    "ImportReport",
    "METAFEATURES_ATTR",
    "STATES",
    "STUDY_KEY_ATTR",
    "study_key",
    "Spool",
    "record_or_spool",
    "SPOOL_DIR_ENV",
]
