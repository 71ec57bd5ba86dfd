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
