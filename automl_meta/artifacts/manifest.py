"""The manifest of an artifact: one schema for what is written and what is read, checked in one place."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from ..exceptions import ArtifactError
from ._schema import _check_field, _invalid, _is_int, _is_object, _spec
from .preprocessing import Preprocessing

FORMAT = "automl-meta-artifact"
FORMAT_VERSION = 1


def _is_learner(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and isinstance(v.get("name"), str)
        and isinstance(v.get("meta_learns"), list)
        and all(isinstance(x, str) for x in v["meta_learns"])
    )


@dataclass(frozen=True)
class Manifest:
    """The JSON manifest of an ``.ameta`` file, one field per key.

    :meth:`from_document` is the only place a manifest read from a file is
    checked: every field must be present and of its type, or an
    :class:`~automl_meta.exceptions.ArtifactError` names the field. The keys of
    ``task_family`` that say how new data is prepared are checked here too, as
    :class:`~automl_meta.artifacts.preprocessing.Preprocessing` reads them
    (``task_family.feature_mean``, ...). Keys this version does not know are ignored.

    Examples
    --------
    >>> import automl_meta as am
    >>> from automl_meta.artifacts.manifest import Manifest
    >>> doc = am.load("default-l2o").manifest
    >>> Manifest.from_document(doc, "default-l2o").learner["name"]
    'hyper_controller'
    >>> Manifest.from_document({**doc, "metrics": "x"}, "f.ameta")
    Traceback (most recent call last):
    ...
    automl_meta.exceptions.ArtifactError: 'f.ameta' has an invalid manifest: field 'metrics' must be a JSON object...
    """

    format: str = _spec(f"the string {FORMAT!r}", lambda v: v == FORMAT)
    format_version: int = _spec(
        f"an integer from 1 to {FORMAT_VERSION}", lambda v: _is_int(v) and 1 <= v <= FORMAT_VERSION
    )
    learner: dict[str, Any] = _spec(
        "a JSON object with a string 'name' and a list of strings 'meta_learns'", _is_learner
    )
    task_family: dict[str, Any] = _spec("a JSON object", _is_object)
    training: dict[str, Any] = _spec("a JSON object", _is_object)
    metrics: dict[str, Any] = _spec("a JSON object", _is_object)
    seed: int | None = _spec("an integer or null", lambda v: v is None or _is_int(v))
    versions: dict[str, str] = _spec(
        "a JSON object of strings", lambda v: _is_object(v) and all(isinstance(x, str) for x in v.values())
    )
    created: str = _spec("a string (an ISO 8601 time)", lambda v: isinstance(v, str))
    tensors_sha256: str = _spec(
        "64 lowercase hexadecimal digits", lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None
    )

    @classmethod
    def from_document(cls, document: Any, source: object) -> Manifest:
        """Check a manifest read from ``source`` (named in errors) and return it."""
        if not isinstance(document, dict):
            raise ArtifactError(f"'{source}' has a corrupt manifest (not a JSON object).")
        if document.get("format") != FORMAT:
            raise ArtifactError(f"'{source}' is not an automl-meta artifact (format {document.get('format')!r}).")
        version = document.get("format_version")
        if _is_int(version) and version > FORMAT_VERSION:
            raise ArtifactError(
                f"'{source}' has artifact format version {version!r}; this automl-meta reads up "
                f"to {FORMAT_VERSION}. Upgrade automl-meta to load it."
            )
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in document:
                raise _invalid(source, f.name, "is missing")
            _check_field(source, f.name, f, document[f.name])
            values[f.name] = document[f.name]
        Preprocessing.from_dict(values["task_family"], source)  # the keys of task_family the estimators read
        return cls(**values)

    def to_document(self) -> dict[str, Any]:
        """The manifest as the JSON object written into the file."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
