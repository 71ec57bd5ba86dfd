"""The knowledge file: tuning results of every search space on every meta-training task, in two files.

``knowledge-<version>.npz`` holds numbers only (read with ``allow_pickle=False``): per task its
meta-features, per (space, task type) block the evaluated configurations (Optuna's internal
representation, NaN where a conditional parameter is inactive) and the (task, configuration, loss)
triples. ``knowledge-<version>.json``, the manifest, holds everything else: the format, the tasks'
names and sources, each block's distributions (Optuna's JSON), the build settings, the versions of
scikit-learn and the corpus, the date, and the sha256 of the ``.npz``, which is checked on every load.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import KnowledgeError
from ..metafeatures import NAMES

FORMAT = 1  # bump when the layout changes; readers refuse other formats


@dataclass(frozen=True, eq=False)
class SpaceKnowledge:
    """The results of one search space on the tasks of one type.

    Attributes
    ----------
    space : str
        The space's name in :data:`automl_meta.spaces.SPACES`.
    task_type : {"classification", "regression"}
    distributions : dict of str to optuna.distributions.BaseDistribution
        Every parameter the configurations may hold (unprefixed names, conditional ones included).
    configs : ndarray of shape (n_configs, n_params)
        Internal representations (Optuna's) in ``distributions`` order; NaN where a parameter is inactive.
    task_index, config_index : ndarray of int
        Which task (row of :attr:`KnowledgeBase.tasks`) ran which configuration.
    loss : ndarray of float
        The loss of each run (one minus the cross-validated score); NaN where the fit failed.
    """

    space: str
    task_type: str
    distributions: dict[str, Any]
    configs: np.ndarray
    task_index: np.ndarray
    config_index: np.ndarray
    loss: np.ndarray

    def config(self, i: int) -> dict[str, Any]:
        """Configuration ``i`` as ``{name: value}`` (inactive parameters left out)."""
        return {
            name: d.to_external_repr(float(v))
            for (name, d), v in zip(self.distributions.items(), self.configs[i])
            if not np.isnan(v)
        }

    def runs(self) -> dict[int, tuple[list[int], np.ndarray]]:
        """Per task index: the configurations it ran (indices) and their losses, failed runs left out."""
        out: dict[int, tuple[list[int], np.ndarray]] = {}
        ok = np.isfinite(self.loss)
        for t in np.unique(self.task_index[ok]):
            mine = ok & (self.task_index == t)
            out[int(t)] = (self.config_index[mine].tolist(), self.loss[mine])
        return out


@dataclass(frozen=True, eq=False)
class KnowledgeBase:
    """A knowledge file's content: its tasks, their meta-features, and one :class:`SpaceKnowledge` per block.

    Attributes
    ----------
    manifest : dict
        Provenance and settings (see the module's documentation).
    tasks : list of dict
        Per task: ``name``, ``source``, ``task_type``, ``fingerprint``, ``rows``, ``features``.
    metafeatures : ndarray of shape (n_tasks, len(automl_meta.metafeatures.NAMES))
    blocks : list of SpaceKnowledge
    """

    manifest: dict[str, Any]
    tasks: list[dict[str, Any]]
    metafeatures: np.ndarray
    blocks: list[SpaceKnowledge] = field(default_factory=list)

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def block(self, space: str, task_type: str) -> SpaceKnowledge | None:
        """The block of ``space`` for tasks of ``task_type``, or None."""
        return next((b for b in self.blocks if b.space == space and b.task_type == task_type), None)


def write(kb: KnowledgeBase, folder: Path, version: str) -> tuple[Path, Path]:
    """Write ``knowledge-<version>.npz`` and its manifest into ``folder``; return both paths."""
    from optuna.distributions import distribution_to_json

    arrays: dict[str, np.ndarray] = {"metafeatures": np.asarray(kb.metafeatures, dtype=np.float64)}
    blocks = []
    for i, b in enumerate(kb.blocks):
        arrays[f"b{i}_configs"] = b.configs.astype(np.float64)
        arrays[f"b{i}_task"] = b.task_index.astype(np.int32)
        arrays[f"b{i}_config"] = b.config_index.astype(np.int32)
        arrays[f"b{i}_loss"] = b.loss.astype(np.float64)
        params = [[n, json.loads(distribution_to_json(d))] for n, d in b.distributions.items()]  # column order
        blocks.append({"space": b.space, "task_type": b.task_type, "params": params})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types allow_pickle only
    data = buffer.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    npz, manifest_path = folder / f"knowledge-{version}.npz", folder / f"knowledge-{version}.json"
    npz.write_bytes(data)
    manifest = {
        **kb.manifest,
        "format": FORMAT,
        "version": version,
        "metafeatures": NAMES,
        "tasks": kb.tasks,
        "blocks": blocks,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return npz, manifest_path


def read(manifest_path: str | Path) -> KnowledgeBase:
    """Read a knowledge file from its manifest (``knowledge-<version>.json``; the ``.npz`` lies next to it).

    Raises
    ------
    KnowledgeError
        When either file is missing, unreadable, of another format, or the data does not match the
        manifest's checksum.
    """
    path = Path(manifest_path)
    try:
        manifest = json.loads(path.read_text())
        npz = path.with_suffix(".npz")
        data = npz.read_bytes()
    except (OSError, ValueError) as exc:
        raise KnowledgeError(f"Cannot read the knowledge file {path}: {exc}.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise KnowledgeError(
            f"The knowledge file {path} has format {manifest.get('format') if isinstance(manifest, dict) else '?'}, "
            f"this version of automl-meta reads format {FORMAT}: rebuild it or upgrade automl-meta."
        )
    if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
        raise KnowledgeError(f"The knowledge file {npz} is damaged: its checksum does not match {path.name}.")
    try:
        return _decode(manifest, np.load(io.BytesIO(data), allow_pickle=False))
    except (KeyError, ValueError, TypeError) as exc:
        raise KnowledgeError(f"The knowledge file {path} is inconsistent: {exc!r}.") from None


def _decode(manifest: Mapping[str, Any], arrays: Any) -> KnowledgeBase:
    from optuna.distributions import json_to_distribution

    if list(manifest["metafeatures"]) != NAMES:
        raise ValueError("its meta-features are not the ones this version computes")
    blocks = [
        SpaceKnowledge(
            b["space"],
            b["task_type"],
            {n: json_to_distribution(json.dumps(d)) for n, d in b["params"]},
            arrays[f"b{i}_configs"],
            arrays[f"b{i}_task"],
            arrays[f"b{i}_config"],
            arrays[f"b{i}_loss"],
        )
        for i, b in enumerate(manifest["blocks"])
    ]
    meta = {k: v for k, v in manifest.items() if k not in ("blocks", "tasks")}
    return KnowledgeBase(meta, list(manifest["tasks"]), arrays["metafeatures"], blocks)
