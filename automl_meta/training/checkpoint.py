"""Training checkpoints: learner, optimizer, best state and counters in one atomically written file.

Each checkpoint carries a sha256 digest of its tensors and its JSON record, so
a damaged file is refused instead of resumed from. Writing a checkpoint keeps
the one it replaces as ``<name>.prev`` (``last.ckpt.prev``); when the newest is
damaged, the error names the previous one and how to resume from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from ..artifacts import tensorfile
from ..exceptions import CheckpointError

KIND = "automl-meta-checkpoint"
VERSION = 2  # 2 added the digest; version 1 (automl-meta 0.1, no digest) is still read, with a warning
DIGEST_KEY = "sha256"
PREVIOUS_SUFFIX = ".prev"


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim/{idx}/{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], doc: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split("/", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, entries in doc["scalars"].items():
        state.setdefault(int(idx), {}).update(entries)
    return {"state": state, "param_groups": doc["param_groups"]}


def save(
    path: str | os.PathLike,
    *,
    learner_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    best_state: dict[str, torch.Tensor] | None,
    record: dict[str, Any],
) -> Path:
    """Write a checkpoint; ``record`` holds the JSON part (iteration, fingerprint, counters, history)."""
    tensors = {f"learner/{k}": v for k, v in learner_state.items()}
    if best_state is not None:
        tensors.update({f"best/{k}": v for k, v in best_state.items()})
    optim_tensors, optim_doc = _flatten_optimizer(optimizer_state)
    tensors.update(optim_tensors)
    # The digest covers the record as it will read back (JSON turns tuples into lists, keys into strings).
    doc = json.loads(json.dumps({"kind": KIND, "version": VERSION, "optimizer": optim_doc, **record}))
    doc[DIGEST_KEY] = _digest(tensors, doc)
    return tensorfile.write(path, tensors, doc, previous=previous_path(path))


def previous_path(path: str | os.PathLike) -> Path:
    """Where :func:`save` keeps the checkpoint that stood at ``path`` before (``last.ckpt.prev``)."""
    path = Path(path)
    return path.with_name(path.name + PREVIOUS_SUFFIX)


def _digest(tensors: dict[str, torch.Tensor], doc: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(doc, sort_keys=True).encode())
    h.update(tensorfile.tensors_sha256(tensors).encode())
    return h.hexdigest()


def _verify(path: str | os.PathLike, tensors: dict[str, torch.Tensor], doc: dict[str, Any]) -> None:
    """Refuse a checkpoint that is not one, is newer, or fails its digest; warn on an unverifiable old one."""
    version = doc.get("version")
    if doc.get("kind") != KIND or isinstance(version, bool) or version not in (1, VERSION):
        newer = doc.get("kind") == KIND and isinstance(version, int) and version > VERSION
        raise CheckpointError(
            f"'{path}' is not a version-{VERSION} automl-meta checkpoint"
            + (" (written by a newer automl-meta: upgrade to resume it)." if newer else ".")
        )
    if version == VERSION or DIGEST_KEY in doc:  # a digest, when present, is always checked
        if doc.pop(DIGEST_KEY, None) != _digest(tensors, doc):
            raise CheckpointError(
                f"'{path}' failed its integrity check: its contents do not match its sha256 "
                "digest (the file was damaged on disk or modified)."
            )
    else:
        warnings.warn(
            f"'{path}' was written by automl-meta 0.1, before checkpoints carried a digest: it is "
            "resumed from without an integrity check.",
            UserWarning,
            stacklevel=3,
        )


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint into ``learner_state``, ``optimizer_state``, ``best_state`` and ``record``.

    Raises
    ------
    CheckpointError
        The file is missing, corrupt, truncated, fails its integrity check, or is not a checkpoint.
    """
    tensors, doc = tensorfile.read(path, error=CheckpointError, what="checkpoint")
    _verify(path, tensors, doc)
    parts: dict[str, dict[str, torch.Tensor]] = {"learner": {}, "best": {}, "optim": {}}
    for name, value in tensors.items():
        head, _, rest = name.partition("/")
        if head not in parts:
            raise CheckpointError(f"'{path}' holds an unexpected tensor {name!r}; it is not a checkpoint.")
        parts[head][name if head == "optim" else rest] = value
    record = {k: v for k, v in doc.items() if k not in ("kind", "version", "optimizer")}
    return {
        "learner_state": parts["learner"],
        "best_state": parts["best"] or None,
        "optimizer_state": _unflatten_optimizer(parts["optim"], doc["optimizer"]),
        "record": record,
    }


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Where two configurations differ, as ``"key.sub: checkpoint X, now Y"`` lines."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            line
            for k in sorted(old.keys() | new.keys(), key=str)
            for line in _differences(old.get(k), new.get(k), f"{path}.{k}" if path else str(k))
        ]
    return [] if old == new else [f"{path or 'configuration'}: checkpoint {old!r}, now {new!r}"]


def resume_state(path: Path | None, *, resume: bool, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state of the run at ``path`` to continue, or None when there is none.

    Raises
    ------
    CheckpointError
        A run is there but ``resume`` is False (nothing is overwritten), or it was written by a
        configuration other than ``fingerprint`` (the message names each setting that differs).
    """
    if path is None or not path.exists():
        return None
    if not resume:
        raise CheckpointError(
            f"'{path}' already holds a run. Pass resume=True to continue it, or choose "
            "another checkpoint_dir (nothing was overwritten)."
        )
    try:
        state = load(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} {_previous_advice(Path(path))}") from None
    saved = state["record"].get("fingerprint")
    if saved != fingerprint:
        diff = _differences(saved or {}, fingerprint)
        raise CheckpointError(
            f"'{path}' was written by a different configuration ({'; '.join(diff[:5])}); "
            "resume with the same settings or another checkpoint_dir."
        )
    return state


def _previous_advice(path: Path) -> str:
    """What to do about a damaged checkpoint at ``path``: resume from the previous one, or start over."""
    previous = previous_path(path)
    start_over = f"Start over: delete '{path}' (or choose another checkpoint_dir) and run without resume."
    if not previous.is_file():
        return f"No previous checkpoint was kept. {start_over}"
    try:
        record = load(previous)["record"]
    except CheckpointError as exc:
        return f"The previous checkpoint is damaged too ({exc}). {start_over}"
    where = next((f" ({unit} {record[unit]})" for unit in ("iteration", "episode") if unit in record), "")
    return (
        f"The previous checkpoint '{previous}'{where} is intact: to resume from it, move it to '{path}' "
        "(replacing the damaged file) and run again with resume=True."
    )
