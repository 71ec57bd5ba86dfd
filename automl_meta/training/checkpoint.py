"""Training checkpoints: learner, optimizer, best state and counters in one atomically written file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..artifacts import tensorfile
from ..exceptions import CheckpointError

KIND = "automl-meta-checkpoint"
VERSION = 1


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
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


def save(path: str | os.PathLike, *, learner_state: dict[str, torch.Tensor], optimizer_state: dict[str, Any],
         best_state: dict[str, torch.Tensor] | None, record: dict[str, Any]) -> Path:
    """Write a checkpoint; ``record`` holds the JSON part (iteration, fingerprint, counters, history)."""
    tensors = {f"learner/{k}": v for k, v in learner_state.items()}
    if best_state is not None:
        tensors.update({f"best/{k}": v for k, v in best_state.items()})
    optim_tensors, optim_doc = _flatten_optimizer(optimizer_state)
    tensors.update(optim_tensors)
    return tensorfile.write(path, tensors, {"kind": KIND, "version": VERSION, "optimizer": optim_doc, **record})


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint into ``learner_state``, ``optimizer_state``, ``best_state`` and ``record``."""
    tensors, doc = tensorfile.read(path, error=CheckpointError, what="checkpoint")
    if doc.get("kind") != KIND or doc.get("version") != VERSION:
        raise CheckpointError(f"'{path}' is not a version-{VERSION} automl-meta checkpoint.")
    parts: dict[str, dict[str, torch.Tensor]] = {"learner": {}, "best": {}, "optim": {}}
    for name, value in tensors.items():
        head, _, rest = name.partition("/")
        if head not in parts:
            raise CheckpointError(f"'{path}' holds an unexpected tensor {name!r}; it is not a checkpoint.")
        parts[head][name if head == "optim" else rest] = value
    record = {k: v for k, v in doc.items() if k not in ("kind", "version", "optimizer")}
    return {"learner_state": parts["learner"], "best_state": parts["best"] or None,
            "optimizer_state": _unflatten_optimizer(parts["optim"], doc["optimizer"]), "record": record}


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Where two configurations differ, as ``"key.sub: checkpoint X, now Y"`` lines."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for k in sorted(old.keys() | new.keys(), key=str)
                for line in _differences(old.get(k), new.get(k), f"{path}.{k}" if path else str(k))]
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
        raise CheckpointError(f"'{path}' already holds a run. Pass resume=True to continue it, or choose "
                              "another checkpoint_dir (nothing was overwritten).")
    state = load(path)
    saved = state["record"].get("fingerprint")
    if saved != fingerprint:
        diff = _differences(saved or {}, fingerprint)
        raise CheckpointError(f"'{path}' was written by a different configuration ({'; '.join(diff[:5])}); "
                              "resume with the same settings or another checkpoint_dir.")
    return state
