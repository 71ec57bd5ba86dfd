"""Where artifacts are found: the name of one bundled with the package, or a path on disk.

A bundled name always means the package's file, whatever the working folder
holds: a file there cannot stand in for a bundled artifact. Anything else is a
path (``./default-l2o`` is the file of that name in the working folder).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..exceptions import ArtifactError

BUNDLED_DIR = Path(__file__).parent / "bundled"
SUFFIX = ".ameta"


def bundled() -> list[str]:
    """Names of the artifacts shipped inside the package.

    Examples
    --------
    >>> from automl_meta.artifacts import bundled
    >>> "default-l2o" in bundled()
    True
    """
    return sorted(p.name[: -len(SUFFIX)] for p in BUNDLED_DIR.glob(f"*{SUFFIX}"))


def locate(path_or_name: str | os.PathLike) -> tuple[Path, str | None]:
    """The file for a bundled name or a path, and the bundled name (None for a path).

    Raises
    ------
    ArtifactError
        Neither a bundled name nor an existing file; the message lists the bundled names.

    Examples
    --------
    >>> from automl_meta.artifacts.registry import locate
    >>> path, name = locate("default-l2o")
    >>> name, path.parent.name
    ('default-l2o', 'bundled')
    """
    if isinstance(path_or_name, str) and path_or_name in bundled():
        if os.path.isfile(path_or_name):
            warnings.warn(
                f"'{path_or_name}' is the name of a bundled artifact, which was loaded; the file of that "
                f"name in the working folder was not. To load that file, pass './{path_or_name}'.",
                UserWarning,
                stacklevel=4,
            )
        return BUNDLED_DIR / f"{path_or_name}{SUFFIX}", path_or_name
    path = Path(path_or_name)
    if path.is_file():
        return path, None
    names = ", ".join(bundled()) or "none"
    raise ArtifactError(
        f"No artifact file at '{path_or_name}' and no bundled artifact of that name (bundled artifacts: {names})."
    )


def resolve(path_or_name: str | os.PathLike) -> Path:
    """The file for a bundled name or a path; an :class:`ArtifactError` listing the options otherwise."""
    return locate(path_or_name)[0]
