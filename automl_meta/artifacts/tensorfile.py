"""One file holding named tensors and a JSON document: a safetensors file with the JSON in its header.

Used for artifacts and for training checkpoints. Writes are atomic (a
temporary file in the same folder, then a rename), so a crash mid-write never
leaves a half-written file where a good one stood; the temporary file a killed
writer leaves behind is removed by the next write of the same target. Files
are created like any file the user writes (the umask applies). Reading never
unpickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..exceptions import ArtifactError

DOCUMENT_KEY = "automl_meta"
# A temporary file of another machine (shared folder) is left alone unless this old: its writer may be alive.
_FOREIGN_TMP_AGE = 24 * 3600
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_READ_ERRORS = (SafetensorError, OSError, ValueError, RuntimeError)

Shapes = dict[str, tuple[int, ...]]


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """A digest of names, dtypes, shapes and bytes of ``tensors``, independent of their order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    document: dict[str, Any],
    *,
    previous: str | os.PathLike | None = None,
) -> Path:
    """Atomically write ``tensors`` and the JSON-serialisable ``document`` to ``path``.

    With ``previous``, the file that stood at ``path`` (if any) is kept there.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    data = save(flat, metadata={DOCUMENT_KEY: json.dumps(document, sort_keys=True)})
    _remove_stale_temporaries(path)
    tmp = _temporary(path)
    try:
        _write_new_file(tmp, data)
        if previous is not None and path.is_file():
            _keep_copy(path, Path(previous))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)
    return path


def _write_new_file(path: Path, data: bytes) -> None:
    # os.open applies the umask (and default ACLs) to 0o666, as for any file the user writes.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _keep_copy(path: Path, previous: Path) -> None:
    """Make ``previous`` a copy of ``path`` (a hard link where the file system has them), atomically."""
    _remove_stale_temporaries(previous)
    tmp = _temporary(previous)
    try:
        try:
            os.link(path, tmp)
        except OSError:
            shutil.copy2(path, tmp)
        os.replace(tmp, previous)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temporary(path: Path) -> Path:
    # The writer's host and pid are in the name, so that a later write can tell an orphan from a live write.
    return path.with_name(f".{path.name}.{os.getpid()}-{_HOST}.{secrets.token_hex(4)}.tmp")


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files of ``path`` whose writer is gone (killed mid-write)."""
    prefix = f".{path.name}."
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        rest = name[len(prefix) :]
        ours = re.fullmatch(r"(\d+)-([0-9a-f]{8})\.[0-9a-f]{8}\.tmp", rest)
        legacy = re.fullmatch(r"[a-z0-9_]{8}\.tmp", rest)  # mkstemp's names, written by automl-meta 0.1
        candidate = path.parent / name
        if ours and not _writer_is_gone(int(ours[1]), ours[2], candidate):
            continue
        if ours or legacy:
            candidate.unlink(missing_ok=True)


def _writer_is_gone(pid: int, host: str, tmp: Path) -> bool:
    if host != _HOST or os.name == "nt":  # on Windows os.kill(pid, 0) would end the process
        try:
            return time.time() - tmp.stat().st_mtime > _FOREIGN_TMP_AGE
        except OSError:
            return False
    if pid == os.getpid():
        return False  # another thread of this process is writing it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, owned by another user
    return False


def _read_header(
    path: Path, error: type[Exception], what: str, max_document_chars: int | None
) -> tuple[Shapes, dict[str, Any]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except _READ_ERRORS as exc:
        raise error(f"'{path}' is not a readable {what} (corrupt or truncated file: {exc}).") from None
    if DOCUMENT_KEY not in meta:
        raise error(f"'{path}' is a safetensors file but not an automl-meta {what} (no '{DOCUMENT_KEY}' header).")
    text = meta[DOCUMENT_KEY]
    if max_document_chars is not None and len(text) > max_document_chars:
        raise error(
            f"'{path}' has a {what} header of {len(text)} characters, more than the {max_document_chars} "
            f"an automl-meta {what} has; the file is damaged or crafted."
        )
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"'{path}' has a corrupt {what} header ({exc}).") from None
    if not isinstance(document, dict):
        raise error(f"'{path}' has a corrupt {what} header (not a JSON object).")
    return shapes, document


def read(
    path: str | os.PathLike,
    *,
    error: type[Exception] = ArtifactError,
    what: str = "artifact",
    check: Callable[[Shapes, dict[str, Any]], None] | None = None,
    max_document_chars: int | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read what :func:`write` wrote; any problem raises ``error`` naming the file and the problem.

    ``check(shapes, document)`` runs on the header (the tensors' shapes and the JSON document)
    before any tensor is loaded; ``max_document_chars`` bounds the JSON document.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"No {what} file at '{path}'.")
    shapes, document = _read_header(path, error, what, max_document_chars)
    if check is not None:
        check(shapes, document)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except _READ_ERRORS as exc:
        raise error(f"'{path}' is not a readable {what} (corrupt or truncated file: {exc}).") from None
    return tensors, document
