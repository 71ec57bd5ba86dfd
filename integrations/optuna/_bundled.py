"""The knowledge file the sampler reads besides the store: the bundled one by default, any other, or none."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from automl_meta.exceptions import KnowledgeError
from automl_meta.knowledge import KnowledgeBase, bundled_path, load

KnowledgeLike = Any  # "bundled", a path to a knowledge file's manifest, a KnowledgeBase, or None


@lru_cache(maxsize=4)
def _read(path: str, mtime: float) -> KnowledgeBase:
    """A knowledge file read once per process (read again when the file changes)."""
    return load(path)


def resolve_knowledge(knowledge: KnowledgeLike) -> KnowledgeBase | None:
    """The knowledge base ``knowledge`` names, or None (off, or it cannot be read: then with a warning).

    A missing or damaged file never stops a study: the sampler warns, says what to do, and goes on with
    the store alone.
    """
    if knowledge is None or isinstance(knowledge, KnowledgeBase):
        return knowledge
    if not isinstance(knowledge, (str, os.PathLike)):
        raise TypeError(
            "knowledge must be 'bundled', the path of a knowledge file's manifest (knowledge-<version>.json), "
            f"a KnowledgeBase or None; got {type(knowledge).__name__}."
        )
    path = bundled_path() if knowledge == "bundled" else Path(knowledge)
    try:
        return _read(str(path), path.stat().st_mtime)
    except (OSError, KnowledgeError) as exc:
        fix = "reinstall automl-meta" if knowledge == "bundled" else "rebuild it with studies/build_knowledge.py"
        warnings.warn(
            f"MetaLearnedSampler cannot use the knowledge file {path} ({exc}); it goes on with the experience "
            f"store alone. To use the file, {fix}; pass knowledge=None to turn it off without this warning.",
            UserWarning,
            stacklevel=4,
        )
        return None


def prefix_of(names: Iterable[str]) -> str:
    """The Pipeline step prefix (``"model__"``) the parameter names share, or "" when they share none."""
    prefixes = {n.rpartition("__")[0] for n in names}
    if len(prefixes) != 1 or not (prefix := prefixes.pop()):
        return ""
    return prefix + "__"
