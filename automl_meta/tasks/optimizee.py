"""Training problems for learned optimizers: quadratics, small MLPs on synthetic tabular tasks, small CNNs
and MLP autoencoders.

A learned optimizer is meta-trained by running it on many small training
problems (*optimizees*). :class:`OptimizeeTasks` draws them: each draw is an
:class:`OptimizeeBatch` of tasks that share parameter shapes (one architecture
per batch, so the batch is vmapped), with per-task data and initial parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..engine.losses import task_loss
from ..exceptions import TaskError
from ._images import image_tasks
from .corpus_tabular import CorpusTabular
from .distribution import as_generator, check_count
from .tabular import SyntheticTabular

if TYPE_CHECKING:
    from ..corpus import CorpusTask

Params = dict[str, Tensor]
KINDS = ("quadratic", "mlp", "cnn", "autoencoder")
_IMAGE_SIZES = (6, 12)  # side of the synthetic images of the convolutional problems
_CHANNELS = (4, 16)  # channels of their two convolutions
_BOTTLENECKS = (4, 16)  # code width of the autoencoders (on images of 36 to 144 pixels)
_QUERY_SHOTS = 64  # held-out rows per problem; configs name it only when it differs (older fingerprints stay valid)
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "gelu": torch.nn.functional.gelu,
    "silu": torch.nn.functional.silu,
}


def mlp_apply(params: Params, x: Tensor, activation: str = "relu") -> Tensor:
    """A fully connected network given as ``{"w0", "b0", "w1", "b1", ...}`` (weights ``(out, in)``)."""
    n = len(params) // 2
    act = ACTIVATIONS[activation]
    for i in range(n):
        x = x @ params[f"w{i}"].T + params[f"b{i}"]
        if i < n - 1:
            x = act(x)
    return x


def init_mlp(widths: Sequence[int], n_tasks: int, rng: np.random.Generator) -> Params:
    """PyTorch's default ``nn.Linear`` initialisation for ``n_tasks`` networks (leading task axis)."""
    params = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        bound = 1 / math.sqrt(a)
        params[f"w{i}"] = torch.as_tensor(rng.uniform(-bound, bound, size=(n_tasks, b, a)), dtype=torch.float32)
        params[f"b{i}"] = torch.as_tensor(rng.uniform(-bound, bound, size=(n_tasks, b)), dtype=torch.float32)
    return params


def cnn_apply(params: Params, x: Tensor, activation: str = "relu") -> Tensor:
    """Two 3 x 3 convolutions (padding 1), global average pooling and a linear head: ``{"w0", ..., "b2"}``."""
    act = ACTIVATIONS[activation]
    h = act(torch.nn.functional.conv2d(x, params["w0"], params["b0"], padding=1))
    h = act(torch.nn.functional.conv2d(h, params["w1"], params["b1"], padding=1))
    return h.mean((-2, -1)) @ params["w2"].T + params["b2"]


def init_cnn(channels: Sequence[int], n_out: int, n_tasks: int, rng: np.random.Generator) -> Params:
    """PyTorch's default initialisation (uniform within 1/sqrt(fan-in)) of :func:`cnn_apply`'s parameters."""
    c0, c1, c2 = channels
    shapes = {"w0": (c1, c0, 3, 3), "w1": (c2, c1, 3, 3), "w2": (n_out, c2)}
    params = {}
    for i, (name, shape) in enumerate(shapes.items()):
        bound = 1 / math.sqrt(int(np.prod(shape[1:])))
        params[name] = torch.as_tensor(rng.uniform(-bound, bound, size=(n_tasks, *shape)), dtype=torch.float32)
        params[f"b{i}"] = torch.as_tensor(rng.uniform(-bound, bound, size=(n_tasks, shape[0])), dtype=torch.float32)
    return params


def _cnn_loss(params: Params, data: dict[str, Tensor], *, activation: str) -> Tensor:
    return task_loss(cnn_apply(params, data["x"], activation), data, "classification")


def _mlp_loss(params: Params, data: dict[str, Tensor], *, activation: str, task_type: str) -> Tensor:
    return task_loss(mlp_apply(params, data["x"], activation), data, task_type)


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
        Probability that a batch that is neither quadratics nor CNNs is MLP autoencoders instead of
        classifiers or regressors: the synthetic images of the CNNs, flattened, through a
        ``width``-wide layer to a code of 4-16 units and back, with the mean squared reconstruction
        error as the loss.

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
        tab = self.tabular["classification"]
        size = int(rng.integers(_IMAGE_SIZES[0], _IMAGE_SIZES[1] + 1))
        classes = int(rng.integers(tab.class_range[0], tab.class_range[1] + 1))
        shots = int(rng.integers(tab.shot_range[0], tab.shot_range[1] + 1))
        width = int(rng.integers(self.widths[0], self.widths[1] + 1))
        code = int(rng.integers(_BOTTLENECKS[0], _BOTTLENECKS[1] + 1))
        activation = self.activations[rng.integers(len(self.activations))]
        pixels = size * size

        def flat(d: dict[str, Tensor]) -> dict[str, Tensor]:  # the images are both input and target
            x = d["x"].flatten(2)
            return {"x": x, "y": x, "mask": d["mask"], "class_mask": torch.ones(n, pixels)}

        train, val = image_tasks(n, rng, size=size, n_classes=classes, shots=shots, query_shots=self.query_shots)
        return OptimizeeBatch(
            init_mlp([pixels, width, code, width, pixels], n, rng),
            flat(train),
            flat(val),
            partial(_mlp_loss, activation=activation, task_type="regression"),  # y is x: every pixel's error
            {"kind": "autoencoder", "size": size, "width": width, "code": code, "activation": activation},
            ("x", "y", "mask"),
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
