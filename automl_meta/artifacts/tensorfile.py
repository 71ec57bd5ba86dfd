"""One file holding named tensors and a JSON document: a safetensors file with the JSON in its header.

Used for artifacts and for training checkpoints. Writes are atomic (a
temporary file in the same folder, then a rename), so a crash mid-write never
leaves a half-written file where a good one stood. Reading never unpickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..exceptions import ArtifactError

DOCUMENT_KEY = "automl_meta"


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """A digest of names, dtypes, shapes and bytes of ``tensors``, independent of their order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write(path: str | os.PathLike, tensors: dict[str, torch.Tensor], document: dict[str, Any]) -> Path:
    """Atomically write ``tensors`` and the JSON-serialisable ``document`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make a shared artifact unreadable to others
    try:
        save_file(flat, tmp, metadata={DOCUMENT_KEY: json.dumps(document, sort_keys=True)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read(path: str | os.PathLike, *, error: type[Exception] = ArtifactError,
         what: str = "artifact") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read what :func:`write` wrote; any problem raises ``error`` naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise error(f"No {what} file at '{path}'.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise error(f"'{path}' is not a readable {what} (corrupt or truncated file: {exc}).") from None
    if DOCUMENT_KEY not in meta:
        raise error(f"'{path}' is a safetensors file but not an automl-meta {what} (no '{DOCUMENT_KEY}' header).")
    try:
        document = json.loads(meta[DOCUMENT_KEY])
    except json.JSONDecodeError as exc:
        raise error(f"'{path}' has a corrupt {what} header ({exc}).") from None
    if not isinstance(document, dict):
        raise error(f"'{path}' has a corrupt {what} header (not a JSON object).")
    return tensors, document
