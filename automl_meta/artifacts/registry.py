"""Where artifacts are found: a path on disk, or the name of one bundled with the package."""

from __future__ import annotations

import os
from pathlib import Path

from ..exceptions import ArtifactError

BUNDLED_DIR = Path(__file__).parent / "bundled"
SUFFIX = ".ameta"


def bundled() -> list[str]:
    """Names of the artifacts shipped inside the package."""
    return sorted(p.name[: -len(SUFFIX)] for p in BUNDLED_DIR.glob(f"*{SUFFIX}"))


def resolve(path_or_name: str | os.PathLike) -> Path:
    """The file for a path or bundled name; an :class:`ArtifactError` listing the options otherwise."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    candidate = BUNDLED_DIR / f"{path_or_name}{SUFFIX}"
    if isinstance(path_or_name, str) and os.sep not in path_or_name and candidate.is_file():
        return candidate
    names = ", ".join(bundled()) or "none"
    raise ArtifactError(f"No artifact file at '{path_or_name}' and no bundled artifact of that name "
                        f"(bundled artifacts: {names}).")
