"""A local cache of the built corpus: one ``.npz`` of plain arrays plus a JSON description. Never pickle.

The folder is ``$AUTOML_META_CORPUS_CACHE`` if set, else ``corpus/`` in the user cache directory
(``platformdirs.user_cache_dir("automl-meta")``, e.g. ``~/.cache/automl-meta/corpus`` on Linux). Each
build lives in a sub-folder named by the digest of its key (rules version, row cap, versions of the
source packages), so a new rule or a new package version builds anew instead of reading stale tasks.
Arrays are read with ``allow_pickle=False``; the JSON records the sha256 of the ``.npz``, and a cache that
does not match it (truncated, edited) is ignored and rebuilt. Deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from ._task import CorpusTask

CACHE_ENV = "AUTOML_META_CORPUS_CACHE"
_FORMAT = 1


def cache_dir() -> Path:
    """The folder that holds cached corpus builds.

    Examples
    --------
    >>> from pathlib import Path
    >>> from automl_meta.corpus import cache_dir
    >>> isinstance(cache_dir(), Path)
    True
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("automl-meta")) / "corpus"


def _folder(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps({**key, "format": _FORMAT}, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / digest


def _encode(i: int, task: CorpusTask, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    columns = []
    for name in task.X.columns:
        column = task.X[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            columns.append({"name": name, "categories": [str(c) for c in column.cat.categories]})
            arrays[f"{i}:{len(columns) - 1}"] = column.cat.codes.to_numpy(np.int32)
        else:
            columns.append({"name": name})
            arrays[f"{i}:{len(columns) - 1}"] = column.to_numpy(np.float64)
    arrays[f"{i}:y"] = task.y
    return {
        "name": task.name,
        "source": task.source,
        "dataset": task.dataset,
        "target": task.target,
        "task_type": task.task_type,
        "classes": task.classes,
        "fingerprint": task.fingerprint,
        "split": task.split,
        "columns": columns,
    }


def _decode(i: int, entry: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> CorpusTask:
    data: dict[str, Any] = {}
    for j, column in enumerate(entry["columns"]):
        values = arrays[f"{i}:{j}"]
        data[column["name"]] = (
            pd.Categorical.from_codes(values, categories=column["categories"]) if "categories" in column else values
        )
    classes = None if entry["classes"] is None else tuple(entry["classes"])
    return CorpusTask(
        entry["name"],
        entry["source"],
        entry["dataset"],
        entry["target"],
        entry["task_type"],
        pd.DataFrame(data),
        arrays[f"{i}:y"],
        classes,
        entry["fingerprint"],
        entry["split"],
    )


def write_cache(key: dict[str, Any], tasks: list[CorpusTask], rejected: dict[str, str]) -> Path | None:
    """Store a build; returns its folder, or None when the cache folder is not writable (not an error)."""
    arrays: dict[str, np.ndarray] = {}
    entries = [_encode(i, task, arrays) for i, task in enumerate(tasks)]
    folder = _folder(key)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".building-"))
        # cast: mypy checks **arrays against savez's allow_pickle: bool as well as its **kwds
        np.savez(staging / "tasks.npz", **cast("dict[str, Any]", arrays))
        digest = hashlib.sha256((staging / "tasks.npz").read_bytes()).hexdigest()
        description = {"key": key, "format": _FORMAT, "npz_sha256": digest, "tasks": entries, "rejected": rejected}
        (staging / "tasks.json").write_text(json.dumps(description, indent=1))
        if folder.exists():  # another process built it meanwhile: keep theirs
            _remove(staging)
        else:
            staging.rename(folder)
    except OSError:
        return None
    return folder


def _remove(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def read_cache(key: dict[str, Any]) -> tuple[tuple[CorpusTask, ...], tuple[tuple[str, str], ...]] | None:
    """The cached build for ``key``, or None when there is none or it does not check out."""
    folder = _folder(key)
    try:
        description = json.loads((folder / "tasks.json").read_text())
        content = (folder / "tasks.npz").read_bytes()
    except (OSError, ValueError):
        return None
    if description.get("format") != _FORMAT or hashlib.sha256(content).hexdigest() != description["npz_sha256"]:
        return None
    import io

    with np.load(io.BytesIO(content), allow_pickle=False) as arrays:
        tasks = tuple(_decode(i, entry, arrays) for i, entry in enumerate(description["tasks"]))
    return tasks, tuple(description["rejected"].items())
