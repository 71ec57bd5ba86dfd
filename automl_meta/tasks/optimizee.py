"""Training problems for learned optimizers: quadratics, small MLPs on synthetic tabular tasks, small CNNs
and autoencoders (MLP and convolutional).

A learned optimizer is meta-trained by running it on many small training
problems (*optimizees*). :class:`OptimizeeTasks` draws them: each draw is an
:class:`OptimizeeBatch` of tasks that share parameter shapes (one architecture
per batch, so the batch is vmapped), with per-task data and initial parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..engine.losses import task_loss
from ..exceptions import TaskError
from ._images import image_tasks, shape_tasks
from ._networks import (
    ACTIVATIONS,
    Params,
    cnn_apply,
    conv_autoencoder_apply,
    init_cnn,
    init_conv_autoencoder,
    init_mlp,
    mlp_apply,
)
from .corpus_tabular import CorpusTabular
from .distribution import as_generator, check_count
from .tabular import SyntheticTabular

if TYPE_CHECKING:
    from ..corpus import CorpusTask

KINDS = ("quadratic", "mlp", "cnn", "autoencoder")
_IMAGE_SIZES = (6, 12)  # side of the synthetic images of the convolutional problems
_CHANNELS = (4, 16)  # channels of their two convolutions
_BOTTLENECKS = (4, 16)  # code width of the MLP autoencoders (on images of 36 to 144 pixels)
_QUERY_SHOTS = 64  # held-out rows per problem; configs name it only when it differs (older fingerprints stay valid)


def _cnn_loss(params: Params, data: dict[str, Tensor], *, activation: str) -> Tensor:
    return task_loss(cnn_apply(params, data["x"], activation), data, "classification")


def _mlp_loss(params: Params, data: dict[str, Tensor], *, activation: str, task_type: str) -> Tensor:
    return task_loss(mlp_apply(params, data["x"], activation), data, task_type)


def _reconstruction_loss(
    params: Params, data: dict[str, Tensor], *, apply: Callable[..., Tensor], activation: str
) -> Tensor:
    """Mean squared error of every pixel of the images, their own targets."""
    return (apply(params, data["x"], activation) - data["x"]).square().mean()


def _quadratic_loss(params: Params, data: dict[str, Tensor]) -> Tensor:
    r = data["A"] @ params["x"] - data["b"]
    return 0.5 * r.square().mean()


@dataclass(frozen=True)
class OptimizeeBatch:
    """Tasks sharing parameter shapes: initial parameters and data, each with a leading task axis.

    Attributes
    ----------
    params : dict of Tensor
        Initial parameters of every task.
    train, val : dict of Tensor
        Training data (what the optimizer minimises) and held-out data of every task.
    loss : callable
        ``loss(params, data) -> scalar`` for one task (no task axis); pure, so it vmaps.
    description : dict
        What was drawn (kind, architecture).
    """

    params: Params
    train: dict[str, Tensor]
    val: dict[str, Tensor]
    loss: Callable[[Params, dict[str, Tensor]], Tensor]
    description: dict[str, Any] = field(default_factory=dict)
    row_keys: tuple[str, ...] = ()  # keys of ``train`` whose second axis indexes rows (what a mini-batch draws)

    @property
    def n_tasks(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def minibatch(self, size: int, generator: torch.Generator) -> dict[str, Tensor]:
        """``size`` rows of every task's training data, drawn without replacement (the others keys whole).

        A task's real rows (``mask`` 1) are drawn before its padding, so a task with fewer rows than
        ``size`` gives all of them plus padding, which the loss ignores. Without ``row_keys`` (or with
        ``size`` at least the rows), the whole training data.

        >>> import torch
        >>> batch = OptimizeeTasks(quadratic_fraction=0.0).sample(2, rng=0)
        >>> part = batch.minibatch(8, torch.Generator().manual_seed(0))
        >>> tuple(part["x"].shape[:2]), bool(part["mask"].all())
        ((2, 8), True)
        """
        rows = self.train[self.row_keys[0]].shape[1] if self.row_keys else 0
        if size >= rows:
            return self.train
        scores = torch.rand(self.n_tasks, rows, generator=generator).to(self.train[self.row_keys[0]].device)
        if "mask" in self.train:
            scores = scores + self.train["mask"]  # real rows score above 1, padding below
        index = scores.topk(size, dim=1).indices
        out = dict(self.train)
        for key in self.row_keys:
            v = self.train[key]
            out[key] = v.gather(1, index.reshape(*index.shape, *([1] * (v.dim() - 2))).expand(-1, -1, *v.shape[2:]))
        return out

    def to(self, dtype: torch.dtype) -> OptimizeeBatch:
        def cast(d: Params) -> Params:
            return {k: v.to(dtype) if v.is_floating_point() else v for k, v in d.items()}

        return replace(self, params=cast(self.params), train=cast(self.train), val=cast(self.val))


class OptimizeeTasks:
    """The task distribution learned optimizers are meta-trained on.

    Each batch is either a batch of random quadratics ``0.5 * mean((A x - b)**2)``
    (ill-conditioned, dimension drawn from ``quadratic_dims``) or a batch of
    small MLPs of one drawn width, depth and activation, each trained on its own
    synthetic tabular task from :class:`SyntheticTabular` (classification or
    regression; the support set is the training data, the query set the
    validation data), or, with ``cnn_fraction``, a batch of small convolutional
    networks on synthetic images; with ``real_fraction``, some MLP batches train on real tables.

    Parameters
    ----------
    quadratic_fraction : float, default=0.25
        Probability that a batch is quadratics rather than MLPs.
    quadratic_dims : (int, int), default=(4, 32)
    widths : (int, int), default=(8, 48)
        Hidden width range of the MLPs.
    depths : (int, int), default=(1, 3)
        Hidden-layer count range of the MLPs.
    activations : sequence of str, default=("relu", "tanh", "gelu")
    regression_fraction : float, default=0.25
        Probability that an MLP batch is regression rather than classification.
    n_features, n_classes, shots :
        Passed to :class:`SyntheticTabular` (``shots`` is the training-set size).
    query_shots : int, default=64
        Held-out rows (images) per problem: what the held-out term of a meta-loss is measured on.
    cnn_fraction : float, default=0.0
        Probability that a batch that is not quadratics is small convolutional networks (two 3 x 3
        convolutions of 4-16 channels, global average pooling, a linear head) classifying synthetic
        6 x 6 to 12 x 12 images (shifted class patterns in noise), with ``n_classes`` and ``shots``.
    real_tasks : sequence of CorpusTask, default=()
        Real tables (:func:`automl_meta.corpus.load_corpus`, for example its ``"meta-train"`` split)
        that MLP batches may train on instead of synthetic tasks, seen as :class:`CorpusTabular` sees
        them (random rows and columns, ``n_features`` columns at most, at most the largest of
        ``n_classes`` classes, ``shots`` training rows).
    real_fraction : float, default=0.0
        Probability that an MLP batch trains on ``real_tasks`` of its task type (when there are any).
    autoencoder_fraction : float, default=0.0
        Probability that a batch that is neither quadratics nor CNNs is autoencoders instead of
        classifiers or regressors, with the mean squared reconstruction error as the loss. Their images
        (6 x 6 to 12 x 12, even sides, ``shots`` of them) each have their own few bumps and a soft edge,
        in light noise. Half the batches are MLPs (the flattened images through a ``width``-wide layer to
        a code of 4-16 units and back), half convolutional (a 3 x 3 convolution of stride 2 to half the
        side, a 3 x 3 convolution, a 4 x 4 transposed convolution of stride 2 back; 4-16 channels).

    Examples
    --------
    >>> from automl_meta.tasks import OptimizeeTasks
    >>> batch = OptimizeeTasks(quadratic_fraction=0.0).sample(4, rng=0)
    >>> batch.n_tasks, batch.description["kind"]
    (4, 'mlp')
    """

    def __init__(
        self,
        *,
        quadratic_fraction: float = 0.25,
        quadratic_dims: int | tuple[int, int] = (4, 32),
        widths: int | tuple[int, int] = (8, 48),
        depths: int | tuple[int, int] = (1, 3),
        activations: Sequence[str] = ("relu", "tanh", "gelu"),
        regression_fraction: float = 0.25,
        n_features: int | tuple[int, int] = (2, 16),
        n_classes: int | tuple[int, int] = (2, 5),
        shots: int | tuple[int, int] = (64, 128),
        cnn_fraction: float = 0.0,
        real_tasks: Sequence[CorpusTask] = (),
        real_fraction: float = 0.0,
        autoencoder_fraction: float = 0.0,
        query_shots: int = _QUERY_SHOTS,
    ) -> None:
        fractions = {
            "quadratic_fraction": quadratic_fraction,
            "regression_fraction": regression_fraction,
            "cnn_fraction": cnn_fraction,
            "real_fraction": real_fraction,
            "autoencoder_fraction": autoencoder_fraction,
        }
        for name, value in fractions.items():
            if not 0.0 <= value <= 1.0:
                raise TaskError(f"{name} must be in [0, 1], got {value!r}.")
        unknown = set(activations) - set(ACTIVATIONS)
        if unknown or not activations:
            raise TaskError(f"activations must be a non-empty subset of {sorted(ACTIVATIONS)}, got {activations!r}.")
        self.quadratic_fraction, self.regression_fraction = float(quadratic_fraction), float(regression_fraction)
        self.cnn_fraction, self.autoencoder_fraction = float(cnn_fraction), float(autoencoder_fraction)
        self.quadratic_dims = self._pair(quadratic_dims, "quadratic_dims")
        self.widths, self.depths = self._pair(widths, "widths"), self._pair(depths, "depths")
        self.activations = tuple(activations)
        self.query_shots = check_count(query_shots, "query_shots")
        self.tabular = {
            t: SyntheticTabular(
                t, n_features=n_features, n_classes=n_classes, shots=shots, query_shots=self.query_shots
            )
            for t in ("classification", "regression")
        }
        self.real_fraction = float(real_fraction)
        if real_fraction and not real_tasks:
            raise TaskError("real_fraction > 0 needs real_tasks, e.g. automl_meta.corpus.load_corpus('meta-train').")
        self.real = self._real_tables(real_tasks, n_features, shots) if real_fraction else {}

    def _real_tables(self, tasks: Sequence[CorpusTask], n_features: Any, shots: Any) -> dict[str, CorpusTabular]:
        """The real tables of each task type, seen like the synthetic tasks (columns, classes, rows)."""
        most_classes = self.tabular["classification"].class_range[1]
        return {
            t: CorpusTabular(
                of_type,
                task_type=t,
                n_features=n_features,
                n_classes=most_classes,
                shots=shots,
                query_shots=self.query_shots,
            )
            for t in ("classification", "regression")
            if (of_type := [task for task in tasks if task.task_type == t])
        }

    @staticmethod
    def _pair(value: Any, name: str) -> tuple[int, int]:  # any user input: checked here
        lo, hi = (value, value) if np.isscalar(value) else tuple(value)
        if not (isinstance(lo, (int, np.integer)) and isinstance(hi, (int, np.integer)) and 1 <= lo <= hi):
            raise TaskError(f"{name} must be an int or a (low, high) pair of ints >= 1, got {value!r}.")
        return int(lo), int(hi)

    def sample(self, n_tasks: int, rng: np.random.Generator | int | None = None) -> OptimizeeBatch:
        """Draw a batch of ``n_tasks`` training problems of one kind and architecture."""
        n_tasks = check_count(n_tasks, "n_tasks")
        rng = as_generator(rng)
        if rng.random() < self.quadratic_fraction:
            return self._quadratics(n_tasks, rng)
        if self.cnn_fraction and rng.random() < self.cnn_fraction:  # drawn only when used: same streams as before
            return self._cnns(n_tasks, rng)
        if self.autoencoder_fraction and rng.random() < self.autoencoder_fraction:
            return self._autoencoders(n_tasks, rng)
        return self._mlps(n_tasks, rng)

    def _cnns(self, n: int, rng: np.random.Generator) -> OptimizeeBatch:
        tab = self.tabular["classification"]
        size = int(rng.integers(_IMAGE_SIZES[0], _IMAGE_SIZES[1] + 1))
        channels = [1, *(int(c) for c in rng.integers(_CHANNELS[0], _CHANNELS[1] + 1, 2))]
        classes = int(rng.integers(tab.class_range[0], tab.class_range[1] + 1))
        shots = int(rng.integers(tab.shot_range[0], tab.shot_range[1] + 1))
        activation = self.activations[rng.integers(len(self.activations))]
        train, val = image_tasks(n, rng, size=size, n_classes=classes, shots=shots, query_shots=self.query_shots)
        return OptimizeeBatch(
            init_cnn(channels, classes, n, rng),
            train,
            val,
            partial(_cnn_loss, activation=activation),
            {"kind": "cnn", "size": size, "channels": channels[1:], "classes": classes, "activation": activation},
            ("x", "y", "mask"),
        )

    def _autoencoders(self, n: int, rng: np.random.Generator) -> OptimizeeBatch:
        conv = rng.random() < 0.5
        size = 2 * int(rng.integers(_IMAGE_SIZES[0] // 2, _IMAGE_SIZES[1] // 2 + 1))  # even: halved and back
        shots = int(rng.integers(*self.tabular["classification"].shot_range, endpoint=True))
        activation = self.activations[rng.integers(len(self.activations))]
        train, val = shape_tasks(n, rng, size=size, shots=shots, query_shots=self.query_shots)
        if conv:
            channels = [int(c) for c in rng.integers(_CHANNELS[0], _CHANNELS[1] + 1, 2)]
            params, apply = init_conv_autoencoder(channels, n, rng), conv_autoencoder_apply
            about: dict[str, Any] = {"channels": channels}
        else:
            width = int(rng.integers(self.widths[0], self.widths[1] + 1))
            code = int(rng.integers(_BOTTLENECKS[0], _BOTTLENECKS[1] + 1))
            params, apply = init_mlp([size * size, width, code, width, size * size], n, rng), mlp_apply
            train, val = ({"x": d["x"].flatten(2), "mask": d["mask"]} for d in (train, val))
            about = {"width": width, "code": code}
        return OptimizeeBatch(
            params,
            train,
            val,
            partial(_reconstruction_loss, apply=apply, activation=activation),
            {
                "kind": "autoencoder",
                "network": "conv" if conv else "mlp",
                "size": size,
                **about,
                "activation": activation,
            },
            ("x", "mask"),
        )

    def _quadratics(self, n: int, rng: np.random.Generator) -> OptimizeeBatch:
        d = int(rng.integers(self.quadratic_dims[0], self.quadratic_dims[1] + 1))
        A = np.empty((n, d, d))
        for i in range(n):
            q, _ = np.linalg.qr(rng.normal(size=(d, d)))
            A[i] = q * np.exp(rng.uniform(np.log(0.1), np.log(3.0), size=d))  # condition number up to 30
        data = {
            "A": torch.as_tensor(A, dtype=torch.float32),
            "b": torch.as_tensor(rng.normal(size=(n, d)), dtype=torch.float32),
        }
        x0 = {"x": torch.as_tensor(rng.normal(size=(n, d)), dtype=torch.float32)}
        return OptimizeeBatch(x0, data, data, _quadratic_loss, {"kind": "quadratic", "dim": d}, ("A", "b"))

    def _mlps(self, n: int, rng: np.random.Generator) -> OptimizeeBatch:
        task_type = "regression" if rng.random() < self.regression_fraction else "classification"
        width = int(rng.integers(self.widths[0], self.widths[1] + 1))
        depth = int(rng.integers(self.depths[0], self.depths[1] + 1))
        activation = self.activations[rng.integers(len(self.activations))]
        family: SyntheticTabular | CorpusTabular = self.tabular[task_type]
        if self.real_fraction and rng.random() < self.real_fraction and task_type in self.real:
            family = self.real[task_type]  # drawn only when used: same streams as before
        tasks = family.sample(n, rng)
        params = init_mlp([family.n_features, *[width] * depth, family.n_outputs], n, rng)
        loss = partial(_mlp_loss, activation=activation, task_type=task_type)
        return OptimizeeBatch(
            params,
            tasks.support(),
            tasks.query(),
            loss,
            {
                "kind": "mlp",
                "task_type": task_type,
                "width": width,
                "depth": depth,
                "activation": activation,
                "data": "real" if isinstance(family, CorpusTabular) else "synthetic",
            },
            ("x", "y", "mask"),
        )

    def get_config(self) -> dict[str, Any]:
        tab = self.tabular["classification"]
        return {
            "quadratic_fraction": self.quadratic_fraction,
            "quadratic_dims": list(self.quadratic_dims),
            "widths": list(self.widths),
            "depths": list(self.depths),
            "activations": list(self.activations),
            "regression_fraction": self.regression_fraction,
            "n_features": list(tab.feature_range),
            "n_classes": list(tab.class_range),
            "shots": list(tab.shot_range),
            **({"cnn_fraction": self.cnn_fraction} if self.cnn_fraction else {}),  # older fingerprints stay valid
            **({"autoencoder_fraction": self.autoencoder_fraction} if self.autoencoder_fraction else {}),
            **({"real_fraction": self.real_fraction, "real_tasks": self._real_names()} if self.real_fraction else {}),
            **({"query_shots": self.query_shots} if self.query_shots != _QUERY_SHOTS else {}),
        }

    def _real_names(self) -> list[str]:
        return sorted(name for family in self.real.values() for name in family.names)

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description (stored in artifact manifests)."""
        return {"family": type(self).__name__, "config": self.get_config()}
