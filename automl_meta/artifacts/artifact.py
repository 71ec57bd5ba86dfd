"""MetaArtifact: a meta-trained learner as data (tensors + manifest), saved and loaded without pickle."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from .. import learners as _learners
from .._version import __version__
from ..engine.devices import module_device, resolve_device
from ..exceptions import ArtifactError
from ..learners import AdaptedModel, Learner, UpdateRule
from . import _architecture, registry, tensorfile
from .manifest import FORMAT, FORMAT_VERSION, Manifest
from .preprocessing import Preprocessing

# Far beyond any real manifest (a few kilobytes): a larger header is refused before it is parsed.
MAX_MANIFEST_CHARS = 1_000_000


def library_versions() -> dict[str, str]:
    import sklearn

    return {
        "automl_meta": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


class MetaArtifact:
    """A meta-trained learner with the record of how it was made.

    An artifact is one ``.ameta`` file: a safetensors file of the learner's
    meta-parameters whose header carries a JSON manifest (format version,
    learner and architecture, task family, training configuration, metrics,
    seed, library versions and the sha256 of the tensors). Loading never
    unpickles, and a corrupt, truncated, tampered or incompatible file is
    refused with a message naming the file and the problem.

    Parameters
    ----------
    learner : Learner or UpdateRule
        A set-up learner whose meta-parameters the artifact holds, or a learned
        optimizer's update rule (used through :class:`automl_meta.optim.LearnedOptimizer`).
    task_family, training, metrics : dict, optional
        JSON-serialisable records stored in the manifest.
    seed : int, optional
        The seed of the meta-training run.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> import automl_meta as am
    >>> learner = am.learners.MetaSGD(am.models.MLP([16]))
    >>> artifact = am.MetaTrainer(learner, am.tasks.Sinusoid(shots=5), iterations=3, verbose=0).fit()
    >>> path = artifact.save(os.path.join(tempfile.mkdtemp(), "sine.ameta"))
    >>> predictor = am.load(path).adapt(np.linspace(-5, 5, 5)[:, None], np.sin(np.linspace(-5, 5, 5)))
    >>> predictor.predict(np.zeros((3, 1))).shape
    (3,)
    """

    def __init__(
        self,
        learner: Learner | UpdateRule,
        *,
        task_family: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        seed: int | None = None,
        versions: dict[str, str] | None = None,
        created: str | None = None,
    ) -> None:
        if not isinstance(learner, (Learner, UpdateRule)) or not learner.is_setup:
            raise ValueError(
                "MetaArtifact needs a set-up automl_meta Learner (meta-train it with MetaTrainer) "
                "or a learned optimizer's UpdateRule."
            )
        self.learner = learner
        self.task_family = dict(task_family or {})
        self.training = dict(training or {})
        self.metrics = dict(metrics or {})
        self.seed = seed
        self.versions = dict(versions or library_versions())
        self.created = created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.learner.state_dict().items()}

    @property
    def manifest(self) -> dict[str, Any]:
        """The JSON manifest written into the file (see :class:`~automl_meta.artifacts.manifest.Manifest`)."""
        return Manifest(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            learner={**self.learner.get_config(), "meta_learns": list(self.learner.meta_learns)},
            task_family=self.task_family,
            training=self.training,
            metrics=self.metrics,
            seed=self.seed,
            versions=self.versions,
            created=self.created,
            tensors_sha256=tensorfile.tensors_sha256(self.tensors()),
        ).to_document()

    @property
    def device(self) -> torch.device:
        """Where the learner's tensors are (the CPU for a loaded artifact, unless another device was asked for)."""
        return module_device(self.learner)

    def to(self, device: str | torch.device) -> MetaArtifact:
        """Move the learner to ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``); return the artifact.

        Examples
        --------
        >>> import automl_meta as am
        >>> am.load("default-l2o").to("cpu").device
        device(type='cpu')
        """
        dtype = next(iter(self.learner.parameters())).dtype
        self.learner.to(resolve_device(device, dtype))
        return self

    def save(self, path: str | os.PathLike) -> Path:
        """Write the artifact to ``path`` (atomically) and return the path (its tensors are written from the CPU)."""
        return tensorfile.write(path, self.tensors(), self.manifest)

    @property
    def preprocessing(self) -> Preprocessing:
        """How new data is prepared for this artifact (read from, and written into, :attr:`task_family`).

        Examples
        --------
        >>> import automl_meta as am
        >>> am.load("default-tabular-regression").preprocessing.shared_features
        False
        """
        return Preprocessing.from_dict(self.task_family)

    @preprocessing.setter
    def preprocessing(self, record: Preprocessing) -> None:
        names = [f.name for f in dataclasses.fields(Preprocessing)]
        self.task_family = {**{k: v for k, v in self.task_family.items() if k not in names}, **record.to_dict()}

    @property
    def family_name(self) -> str | None:
        """The name of the task family meta-trained on (``"SyntheticTabular"``, ``"DatasetTasks"``, ...)."""
        return self.task_family.get("family")

    @property
    def adapt_steps(self) -> int:
        """Adaptation steps by default: the best on the validation tasks, else the inner steps of meta-training."""
        return int(self.training.get("adapt_steps", getattr(self.learner, "inner_steps", 0)))

    @property
    def validated_adapt_steps(self) -> list[int]:
        """The step counts scored on the validation tasks after meta-training (ascending; may be empty)."""
        return sorted(int(k) for k in self.metrics.get("val_loss_by_adapt_steps", {}))

    def adapt(self, X: ArrayLike, y: ArrayLike, steps: int | None = None) -> AdaptedModel:
        """Adapt the learned initialisation (and rates) to a new task's data; return a predictor.

        ``steps`` defaults to the number of inner steps used in meta-training. The data is
        prepared as :attr:`preprocessing` says, as the scikit-learn estimators prepare it: a
        family artifact standardises features (and regression targets) with the family's
        statistics and takes and predicts the family's class labels.
        """
        if isinstance(self.learner, UpdateRule):
            raise TypeError(
                f"This artifact holds a learned optimizer ({self.learner.name}), which does not adapt "
                "to data itself: train a model with automl_meta.optim.LearnedOptimizer(model.parameters(), "
                "artifact=...) instead."
            )
        return self.learner.adapt(X, y, steps=steps, preprocessing=self.preprocessing)

    # Pickling (joblib, multiprocessing) carries the artifact as data: manifest and arrays, rebuilt on load.
    def __getstate__(self) -> dict[str, Any]:
        return {"manifest": self.manifest, "tensors": {k: v.cpu().numpy() for k, v in self.tensors().items()}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        tensors = {k: torch.from_numpy(np.array(v)) for k, v in state["tensors"].items()}
        self.__dict__.update(from_parts(tensors, state["manifest"], "<pickled artifact>").__dict__)

    def __repr__(self) -> str:
        cfg = self.learner.get_config()
        return (
            f"MetaArtifact(learner={cfg['name']!r}, task_type={cfg.get('task_type')!r}, "
            f"family={self.family_name!r}, metrics={self.metrics})"
        )


def load(path_or_name: str | os.PathLike, *, device: str | torch.device | None = None) -> MetaArtifact:
    """Load an artifact from a ``.ameta`` file or by the name of a bundled artifact.

    The learner is loaded to the CPU, whichever device it was meta-trained on, unless ``device``
    (``"cuda"``, ``"cuda:1"``, ``"mps"``, a :class:`torch.device`) asks for another.

    A bundled artifact's name (see :func:`automl_meta.artifacts.bundled`) always means the file
    shipped in the package; to load a file of the same name, give a path (``./name``).
    The manifest is checked, and the architecture it describes compared with the tensors'
    shapes, before any tensor is loaded or any parameter allocated.

    Raises
    ------
    ArtifactError
        The file is missing, corrupt, truncated, tampered with (hash mismatch),
        has an invalid manifest or one that does not match its tensors, or was
        written by an incompatible version; the message names the file.

    Examples
    --------
    >>> import automl_meta as am
    >>> am.load("default-l2o").learner.name
    'hyper_controller'
    >>> am.load("no-such-artifact")
    Traceback (most recent call last):
    ...
    automl_meta.exceptions.ArtifactError: No artifact file at 'no-such-artifact' and no bundled artifact of that name...
    """
    path = registry.resolve(path_or_name)

    def check_header(shapes: dict[str, tuple[int, ...]], document: dict[str, Any]) -> None:
        _architecture.check(_learner_config(Manifest.from_document(document, path)), shapes, path)

    tensors, manifest = tensorfile.read(path, check=check_header, max_document_chars=MAX_MANIFEST_CHARS)
    artifact = from_parts(tensors, manifest, path)
    return artifact if device is None else artifact.to(device)


def _learner_config(manifest: Manifest) -> dict[str, Any]:
    return {k: v for k, v in manifest.learner.items() if k != "meta_learns"}


def from_parts(tensors: dict[str, torch.Tensor], manifest: dict[str, Any], path: object) -> MetaArtifact:
    """Check a manifest and its tensors and rebuild the artifact; ``path`` names the source in errors."""
    checked = Manifest.from_document(manifest, path)
    if tensorfile.tensors_sha256(tensors) != checked.tensors_sha256:
        raise ArtifactError(
            f"'{path}' failed its integrity check: the sha256 of its tensors does not match the "
            "manifest (the file was modified or corrupted). Re-create or re-download it."
        )
    not_float = sorted(k for k, v in tensors.items() if not v.is_floating_point())
    if not_float or len({v.dtype for v in tensors.values()}) > 1:
        found = sorted({str(v.dtype).removeprefix("torch.") for v in tensors.values()})
        raise ArtifactError(
            f"'{path}' holds tensors of dtypes {found}; an artifact's tensors share one floating "
            f"dtype (float32 or float64){f' (not: {not_float[:3]})' if not_float else ''}."
        )
    config = _learner_config(checked)
    # Checked on the meta device first: nothing is allocated for an architecture the tensors do not match.
    _architecture.check(config, {k: tuple(v.shape) for k, v in tensors.items()}, path)
    learner = _learners.from_config(config)
    if tensors:  # keep the saved precision (float32 or float64)
        learner.to(next(iter(tensors.values())).dtype)
    learner.load_state_dict(tensors)
    return MetaArtifact(
        learner,
        task_family=checked.task_family,
        training=checked.training,
        metrics=checked.metrics,
        seed=checked.seed,
        versions=checked.versions,
        created=checked.created,
    )
