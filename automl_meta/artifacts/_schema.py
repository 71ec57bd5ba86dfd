"""Field specifications and error messages shared by the manifest and the records it holds (private)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any, TypeGuard

from ..exceptions import ArtifactError


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_object(v: Any) -> bool:
    return isinstance(v, dict)


def _spec(expected: str, check: Callable[[Any], bool], **metadata: Any) -> Any:
    """A dataclass field checked on reading: ``check(value)`` must hold, else the error says ``expected``."""
    return field(metadata={"expected": expected, "check": check}, **metadata)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _invalid(source: object, name: str, must: str) -> ArtifactError:
    """The error for a manifest field ``name`` (dotted inside an object) that is not what it ``must`` be."""
    return ArtifactError(
        f"'{source}' has an invalid manifest: field {name!r} {must}. The file is damaged or was "
        "not written by automl-meta; re-create or re-download it."
    )


def _check_field(source: object, name: str, spec: Any, value: Any) -> None:
    if not spec.metadata["check"](value):
        raise _invalid(
            source, name, f"must be {spec.metadata['expected']}, found {type(value).__name__} {_short(value)}"
        )
