"""Which Optuna study a trial came from: a key all workers of the study agree on, and names safe to store.

A study *name* does not identify a study: two runs of ``optuna.create_study(study_name="my-study")`` (in memory,
or in two storages) are different studies. The store keys each trial by ``(study key, trial number)``:

* The key lives in the study's user attribute ``automl_meta_study_key``, so every worker, a later
  ``automl-meta store import-optuna`` and a copy made with ``optuna.copy_study`` find the same one.
* A study without that attribute gets a key *derived* from facts of the storage that every worker reads
  alike: the study's name and id, the id and start time of its trial 0. Parallel workers that start at once
  all derive, and write, the same key, so none of them records a trial under a key that loses a race. A
  study in an in-memory storage, which no other process sees, gets a random key.
* Rows written before schema revision 0003 keep a key derived from their study name (:func:`name_hash`),
  which is also the key of :meth:`ExperienceStore.add_evaluation` calls that give a name only.

Names are compared through their sha256 (:func:`name_hash`), byte for byte on every back end; the name kept
for display is escaped and shortened where a database could not hold it (:func:`display_name`).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optuna import Study

__all__ = ["STUDY_KEY_ATTR", "name_hash", "display_name", "study_key"]

#: The Optuna study user attribute holding the study's key in the experience store.
STUDY_KEY_ATTR = "automl_meta_study_key"
#: Characters kept of a study name for display (Optuna's own limit for study names in a database).
STUDY_NAME_WIDTH = 512
_KEY = re.compile(r"[0-9a-f]{32,64}")
_in_memory_lock = threading.Lock()


def name_hash(name: str) -> str:
    """The sha256 of a name's exact characters (any string, also with NUL or unpaired surrogates).

    Examples
    --------
    >>> from automl_meta.store.identity import name_hash
    >>> name_hash("study") == name_hash("Study"), len(name_hash("x" * 10_000))
    (False, 64)
    """
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()


def display_name(name: str, width: int = STUDY_NAME_WIDTH) -> str:
    """A name every back end can store: NUL and unpaired surrogates escaped, at most ``width`` characters.

    Examples
    --------
    >>> from automl_meta.store.identity import display_name
    >>> display_name("a\\x00b"), len(display_name("x" * 1000, 512))
    ('a\\\\x00b', 512)
    """
    text = name.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return text if len(text) <= width else text[: width - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _derived_key(study: Study) -> str:
    from optuna.storages import InMemoryStorage

    if isinstance(study._storage, InMemoryStorage):
        return uuid.uuid4().hex  # only this process sees the storage: nobody to agree with
    trials = study.get_trials(deepcopy=False)
    facts = ["optuna-study", study.study_name, str(study._study_id)]
    if trials:
        first = min(trials, key=lambda t: t.number)
        start = first.datetime_start.isoformat() if first.datetime_start is not None else "waiting"
        facts += [str(first._trial_id), start]
    return hashlib.sha256("\x00".join(facts).encode("utf-8", "surrogatepass")).hexdigest()


def study_key(study: Study, *, write: bool = False) -> str:
    """The key of an Optuna study in the store (see the module's notes).

    Parameters
    ----------
    study : optuna.Study
    write : bool
        Keep a derived key in the study's user attribute ``automl_meta_study_key`` (the recorder does;
        an import only reads its source).

    Examples
    --------
    >>> import optuna
    >>> from automl_meta.store.identity import STUDY_KEY_ATTR, study_key
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> a, b = optuna.create_study(study_name="same"), optuna.create_study(study_name="same")
    >>> study_key(a, write=True) != study_key(b, write=True)
    True
    >>> a.user_attrs[STUDY_KEY_ATTR] == study_key(a)
    True
    """
    from optuna.storages import InMemoryStorage

    def stored() -> str | None:
        key = study.user_attrs.get(STUDY_KEY_ATTR)
        if not isinstance(key, str) or not key:
            return None
        return key if _KEY.fullmatch(key) else name_hash("attr\x00" + key)  # edited by hand: keep it usable

    in_memory = isinstance(study._storage, InMemoryStorage)
    with _in_memory_lock if in_memory else contextlib.nullcontext():
        key = stored()
        if key is not None:
            return key
        key = _derived_key(study)
        if not write:
            return key
        study.set_user_attr(STUDY_KEY_ATTR, key)
        # Workers deriving at the same moment write the same key; should one have derived another (its trial 0
        # was still waiting), the attribute now holds one of them and every later reader uses that one.
        return stored() or key
