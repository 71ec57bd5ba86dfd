"""The held-out mini-batch training problems of ``studies/l2o_minibatch.py``, and a development suite.

Twelve problems as a user trains: mini-batches, convolutional networks, autoencoders, a deep tanh network,
real tables from the corpus's evaluation tasks, runs of 1,500 to 3,000 steps. None of them may be used to
meta-train a learned optimizer: not scikit-learn's digits, not the corpus's evaluation tasks (which no
meta-training reads), not the waveform and Friedman generators at these settings, not these architectures
on any of these data. Meta-training draws from the corpus's meta-train tasks and synthetic problems.

The real tables are chosen by rule, not by result: among the evaluation tasks with at least 3,000 rows,
the two classification and the two regression tasks with the most columns (ties by name). They are
encoded as a user's Pipeline would (:func:`automl_meta.corpus.make_preprocessor`, fitted on the training
split). Every problem splits its rows 75/25 (stratified for classification) with seed 0; features (and
regression targets) are standardised on the training split.

:data:`DEV_PROBLEMS` mirrors them, problem by problem, on other data (the development suite, for choosing
among candidate rules; it may share sources with meta-training, never with the held-out problems).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Spec:
    """A problem: its data, its network, its batch size and number of steps, and the family it stands for."""

    family: str  # "cnn", "tabular", "mlp", "autoencoder", "deep-tanh"
    data: str  # key of DATA
    model: str  # key of MODELS
    batch: int
    steps: int


@dataclass
class Problem:
    """A problem made concrete: tensors of both splits and what the loss is."""

    name: str
    spec: Spec
    kind: str  # "classification", "regression" or "reconstruction"
    n_out: int
    Xtr: torch.Tensor
    ytr: torch.Tensor
    Xte: torch.Tensor
    yte: torch.Tensor

    def build(self, seed: int = 0) -> nn.Module:
        """The problem's network, the same initial weights for every optimizer."""
        torch.manual_seed(seed)
        return MODELS[self.spec.model](self.Xtr.shape[1:], self.n_out)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "classification":
            return nn.functional.cross_entropy(output, target)
        return nn.functional.mse_loss(output, target)


PROBLEMS: dict[str, Spec] = {
    "digits/cnn-small": Spec("cnn", "digits-image", "cnn-small", 32, 1500),
    "digits/cnn-wide": Spec("cnn", "digits-image", "cnn-wide", 128, 2000),
    "digits/conv-autoencoder": Spec("cnn", "digits-image-recon", "conv-autoencoder", 64, 1500),
    "waveforms/cnn-1d": Spec("cnn", "waveforms", "cnn-1d", 64, 1500),
    "table-classification-1/mlp-2x128": Spec("tabular", "table:classification:0", "mlp-2x128", 64, 2000),
    "table-classification-2/mlp-2x128": Spec("tabular", "table:classification:1", "mlp-2x128", 64, 2000),
    "table-regression-1/mlp-2x128": Spec("tabular", "table:regression:0", "mlp-2x128", 64, 2000),
    "table-regression-2/mlp-2x128": Spec("tabular", "table:regression:1", "mlp-2x128", 32, 3000),
    "friedman1/deep-tanh-8x32": Spec("deep-tanh", "friedman1", "tanh-8x32", 32, 3000),
    "digits/mlp-autoencoder": Spec("autoencoder", "digits-flat-recon", "mlp-autoencoder", 64, 2000),
    "synthetic-20d/mlp-3x256": Spec("mlp", "classification-20d", "mlp-3x256", 128, 1500),
    "digits/mlp-1x512-batch16": Spec("mlp", "digits-flat", "mlp-1x512", 16, 1500),
}

# A development suite of the same families, networks, batch sizes and lengths, on data that the held-out
# problems do not use: patches of real photographs (the image problems; see :func:`_photos`), synthetic
# images as rows, the corpus's meta-train tables (by the same rule as the evaluation tables), other
# scikit-learn generators. Not the meta-training CNNs' synthetic images: rules that had learned those
# looked better here than on digits. Candidate rules are compared here, so that the held-out problems
# judge only the one that is chosen.
DEV_PROBLEMS: dict[str, Spec] = {
    "dev/photos/cnn-small": Spec("cnn", "photos", "cnn-small", 32, 1500),
    "dev/photos/cnn-wide": Spec("cnn", "photos", "cnn-wide", 128, 2000),
    "dev/photos/conv-autoencoder": Spec("cnn", "photos-recon", "conv-autoencoder", 64, 1500),
    "dev/image-rows/cnn-1d": Spec("cnn", "image-rows", "cnn-1d", 64, 1500),
    "dev/table-classification-1/mlp-2x128": Spec("tabular", "dev-table:classification:0", "mlp-2x128", 64, 2000),
    "dev/table-classification-2/mlp-2x128": Spec("tabular", "dev-table:classification:1", "mlp-2x128", 64, 2000),
    "dev/table-regression-1/mlp-2x128": Spec("tabular", "dev-table:regression:0", "mlp-2x128", 64, 2000),
    "dev/table-regression-2/mlp-2x128": Spec("tabular", "dev-table:regression:1", "mlp-2x128", 32, 3000),
    "dev/friedman2/deep-tanh-8x32": Spec("deep-tanh", "friedman2", "tanh-8x32", 32, 3000),
    "dev/photos/mlp-autoencoder": Spec("autoencoder", "photos-flat-recon", "mlp-autoencoder", 64, 2000),
    "dev/synthetic-30d/mlp-3x256": Spec("mlp", "classification-30d", "mlp-3x256", 128, 1500),
    "dev/photos/mlp-1x512-batch16": Spec("mlp", "photos-flat", "mlp-1x512", 16, 1500),
}
SUITES = {"held-out": PROBLEMS, "dev": DEV_PROBLEMS}


# -- data: (X, y, kind); X of any shape with rows first ---------------------------------------------------


def _digits(shape: tuple[int, ...], recon: bool) -> tuple[np.ndarray, np.ndarray, str]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(len(X), *shape)
    return (X, X.copy(), "reconstruction") if recon else (X, y, "classification")


def _waveforms(n: int = 3000, length: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Sine, square and sawtooth waves of random frequency, phase and amplitude, in noise: which one is it."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / length
    y = rng.integers(0, 3, n)
    phase = rng.uniform(0, 1, (n, 1)) + rng.uniform(1.5, 5.0, (n, 1)) * t
    waves = np.stack([np.sin(2 * np.pi * phase), np.sign(np.sin(2 * np.pi * phase)), 2 * (phase % 1) - 1], 1)
    X = waves[np.arange(n), y] * rng.uniform(0.5, 2.0, (n, 1)) + rng.normal(0, 0.8, (n, length))
    return X[:, None, :], y, "classification"


def _generated(maker: str, kind: str, *args: int, **kwargs: float) -> tuple[np.ndarray, np.ndarray, str]:
    """Rows from one of scikit-learn's generators (``sklearn.datasets.<maker>``)."""
    from sklearn import datasets

    X, y = getattr(datasets, maker)(*args, **kwargs)
    return X, y, kind


def _images(shape: tuple[int, ...], recon: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """4,000 synthetic 8 x 8 images of 10 classes (:mod:`automl_meta.tasks`' generator), one seed."""
    from automl_meta.tasks._images import image_tasks

    train, _ = image_tasks(1, np.random.default_rng(1), size=8, n_classes=10, shots=4000, query_shots=1)
    X, y = train["x"][0].numpy(), train["y"][0].numpy()
    X = X.reshape(len(X), *shape)
    return (X, X.copy(), "reconstruction") if recon else (X, y, "classification")


def _photos(shape: tuple[int, ...], recon: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """2,080 grey 8 x 8 patches of scikit-learn's two sample photographs, offline.

    Each photograph is halved (2 x 2 means) and cut into patches that do not overlap, so no pixel is in
    both splits. The class is where a patch comes from: which photograph and which of five vertical
    bands (10 classes of 208). For reconstruction each patch is centred and scaled to unit contrast, as
    patch models of natural images do; otherwise its mean brightness (93% of the raw patches' variance)
    would leave an autoencoder little to learn.
    """
    from sklearn.datasets import load_sample_images

    patches, labels = [], []
    for k, photo in enumerate(load_sample_images().images):
        grey = photo.mean(2) / 255.0
        h, w = grey.shape[0] // 2 * 2, grey.shape[1] // 2 * 2
        small = grey[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
        rows, cols = small.shape[0] // 8, small.shape[1] // 8
        cut = small[: rows * 8, : cols * 8].reshape(rows, 8, cols, 8).transpose(0, 2, 1, 3)
        patches.append(cut.reshape(-1, 8, 8))
        labels.append(np.tile(5 * k + np.arange(cols) * 5 // cols, rows))
    X, y = np.concatenate(patches).astype(np.float32), np.concatenate(labels)
    if recon:
        X = X - X.mean((1, 2), keepdims=True)
        X = X / (X.std((1, 2), keepdims=True) + 0.02)  # + 0.02: flat patches (sky) stay near zero
    X = X.reshape(len(X), *shape)
    return (X, X.copy(), "reconstruction") if recon else (X, y, "classification")


def table_tasks(task_type: str, split: str = "evaluation") -> list:
    """The corpus tasks of the rule in the module docstring, of one type and split, in order."""
    from automl_meta.corpus import load_corpus

    tasks = [t for t in load_corpus(split) if t.task_type == task_type and t.n_rows >= 3000]
    return sorted(tasks, key=lambda t: (-t.X.shape[1], t.name))[:2]


DATA: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, str]]] = {
    "digits-image": lambda: _digits((1, 8, 8), recon=False),
    "digits-image-recon": lambda: _digits((1, 8, 8), recon=True),
    "digits-flat": lambda: _digits((64,), recon=False),
    "digits-flat-recon": lambda: _digits((64,), recon=True),
    "waveforms": _waveforms,
    "friedman1": lambda: _generated("make_friedman1", "regression", 4000, noise=1.0, random_state=0),
    "classification-20d": lambda: _generated(
        "make_classification",
        "classification",
        5000,
        20,
        n_informative=10,
        n_classes=4,
        n_clusters_per_class=2,
        random_state=0,
    ),
    "photos": lambda: _photos((1, 8, 8), recon=False),
    "photos-recon": lambda: _photos((1, 8, 8), recon=True),
    "image-rows": lambda: _images((1, 64), recon=False),
    "photos-flat": lambda: _photos((64,), recon=False),
    "photos-flat-recon": lambda: _photos((64,), recon=True),
    "friedman2": lambda: _generated("make_friedman2", "regression", 4000, noise=10.0, random_state=1),
    "classification-30d": lambda: _generated(
        "make_classification",
        "classification",
        5000,
        30,
        n_informative=12,
        n_classes=3,
        n_clusters_per_class=3,
        random_state=1,
    ),
}


# -- networks: (input shape, outputs) -> module -------------------------------------------------------------


def _mlp(widths: tuple[int, ...], act: type[nn.Module]) -> Callable[[tuple[int, ...], int], nn.Module]:
    def build(shape: tuple[int, ...], n_out: int) -> nn.Module:
        sizes = [int(np.prod(shape)), *widths]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), act()]
        return nn.Sequential(*layers, nn.Linear(sizes[-1], n_out))

    return build


def _cnn_small(shape: tuple[int, ...], n_out: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, n_out),
    )  # fmt: skip


def _cnn_wide(shape: tuple[int, ...], n_out: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, n_out),
    )  # fmt: skip


def _conv_autoencoder(shape: tuple[int, ...], n_out: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), nn.ReLU(), nn.ConvTranspose2d(8, 1, 4, stride=2, padding=1),
    )  # fmt: skip


def _cnn_1d(shape: tuple[int, ...], n_out: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
        nn.Flatten(), nn.Linear(32, n_out),
    )  # fmt: skip


def _mlp_autoencoder(shape: tuple[int, ...], n_out: int) -> nn.Module:
    d = int(np.prod(shape))
    return nn.Sequential(
        nn.Linear(d, 32), nn.Tanh(), nn.Linear(32, 8), nn.Tanh(), nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, d)
    )


MODELS: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {
    "cnn-small": _cnn_small,
    "cnn-wide": _cnn_wide,
    "conv-autoencoder": _conv_autoencoder,
    "cnn-1d": _cnn_1d,
    "mlp-2x128": _mlp((128, 128), nn.ReLU),
    "mlp-3x256": _mlp((256, 256, 256), nn.ReLU),
    "mlp-1x512": _mlp((512,), nn.ReLU),
    "tanh-8x32": _mlp((32,) * 8, nn.Tanh),
    "mlp-autoencoder": _mlp_autoencoder,
}


# -- making a problem ---------------------------------------------------------------------------------------


def _table(key: str) -> tuple[np.ndarray, np.ndarray, str, str]:
    kind, task_type, i = key.split(":")
    task = table_tasks(task_type, "meta-train" if kind == "dev-table" else "evaluation")[int(i)]
    return task.X, np.asarray(task.y), task_type, task.name


def make_problem(name: str, seed: int = 0) -> Problem:
    """The named problem of :data:`PROBLEMS` or :data:`DEV_PROBLEMS`, split and scaled (module docstring)."""
    from sklearn.model_selection import train_test_split

    spec = PROBLEMS[name] if name in PROBLEMS else DEV_PROBLEMS[name]
    source = ""
    if ":" in spec.data:  # a corpus table
        X, y, kind, source = _table(spec.data)
    else:
        X, y, kind = DATA[spec.data]()
    strat = y if kind == "classification" else None
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=strat)
    if source:  # a table: encoded as a user's Pipeline would, fitted on the training rows
        from automl_meta.corpus import make_preprocessor

        pre = make_preprocessor(Xtr)
        Xtr, Xte = np.asarray(pre.fit_transform(Xtr), float), np.asarray(pre.transform(Xte), float)
    if kind != "reconstruction":  # images and waves keep their scale (and reconstruction its target)
        mean, std = Xtr.mean(0), Xtr.std(0)
        std = np.where(std > 1e-8, std, 1.0)
        Xtr, Xte = (Xtr - mean) / std, (Xte - mean) / std
    if kind == "classification":
        classes, ytr_i = np.unique(ytr, return_inverse=True)
        yte_i = np.searchsorted(classes, yte)
        targets = torch.tensor(ytr_i, dtype=torch.int64), torch.tensor(yte_i, dtype=torch.int64)
        n_out = len(classes)
    elif kind == "regression":
        ym, ys = ytr.mean(), ytr.std()
        targets = torch.tensor((ytr - ym) / ys, dtype=torch.float32)[:, None]
        targets = targets, torch.tensor((yte - ym) / ys, dtype=torch.float32)[:, None]
        n_out = 1
    else:
        targets = torch.tensor(ytr, dtype=torch.float32), torch.tensor(yte, dtype=torch.float32)
        n_out = int(np.prod(X.shape[1:]))
    as_x = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731 - short local helper
    label = f"{name} ({source})" if source else name
    return Problem(label, spec, kind, n_out, as_x(Xtr), targets[0], as_x(Xte), targets[1])
