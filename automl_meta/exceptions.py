"""Errors raised by automl-meta.

Each one subclasses the built-in exception a caller would already catch
(``ValueError`` for bad input, ``RuntimeError`` for a failed run), so code
written against scikit-learn or PyTorch conventions keeps working.
"""

from __future__ import annotations


class TaskError(ValueError):
    """Task data that cannot be used: wrong shapes, NaN, empty or too-small tasks."""


class ArtifactError(ValueError):
    """An artifact file that is missing, corrupt, tampered with or incompatible."""


class MetaTrainingError(RuntimeError):
    """Meta-training cannot go on (for example, repeated non-finite meta-losses)."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from (corrupt, or from another configuration)."""


class StoreError(RuntimeError):
    """An experience store that cannot be used: unknown URL scheme, missing driver, unreachable database."""


class StoreSchemaError(StoreError):
    """A store whose schema is older (upgrade it) or newer (upgrade automl-meta) than this version expects."""


class KnowledgeError(ValueError):
    """A knowledge file that is missing, damaged, or of a format this version cannot read."""
