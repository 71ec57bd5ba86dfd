"""Synthetic images for learned optimizers' convolutional and autoencoder training problems.

Classification (:func:`image_tasks`): each task has its own classes, a smooth random pattern per class
(a few random bumps). An image is its class's pattern, shifted by up to one pixel each way and scaled by a
random contrast, in Gaussian noise, so a network must learn shift-tolerant local features, as on real
images. Reconstruction (:func:`shape_tasks`): every image its own few bumps and a soft edge, in light noise.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _patterns(rng: np.random.Generator, n_classes: int, size: int) -> np.ndarray:
    """``n_classes`` smooth patterns of ``size`` x ``size`` with unit standard deviation."""
    grid = np.arange(size)
    out = np.zeros((n_classes, size, size))
    for c in range(n_classes):
        for _ in range(int(rng.integers(2, 5))):
            cy, cx = rng.uniform(0, size - 1, 2)
            width = rng.uniform(0.8, size / 3)
            bump = np.exp(-((grid[:, None] - cy) ** 2 + (grid[None, :] - cx) ** 2) / (2 * width**2))
            out[c] += rng.choice([-1.0, 1.0]) * bump
    out -= out.mean((1, 2), keepdims=True)
    return out / (out.std((1, 2), keepdims=True) + 1e-8)


def _draw(rng: np.random.Generator, patterns: np.ndarray, rows: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, len(patterns), rows)
    shifts = rng.integers(-1, 2, (rows, 2))
    x = np.stack([np.roll(patterns[c], tuple(s), axis=(0, 1)) for c, s in zip(y, shifts)])
    x = x * rng.uniform(0.5, 1.5, (rows, 1, 1)) + rng.normal(0, noise, x.shape)
    return x[:, None], y


def image_tasks(
    n_tasks: int, rng: np.random.Generator, *, size: int, n_classes: int, shots: int, query_shots: int
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Training and held-out data of ``n_tasks`` tasks (leading task axis), in the tabular tasks' format:
    ``x`` (images, 1 channel), ``y``, ``mask`` (all rows real) and ``class_mask`` (all classes used)."""
    noise = rng.uniform(0.5, 1.5)
    parts: dict[str, list[np.ndarray]] = {"train_x": [], "train_y": [], "val_x": [], "val_y": []}
    for _ in range(n_tasks):
        patterns = _patterns(rng, n_classes, size)
        for part, rows in (("train", shots), ("val", query_shots)):
            x, y = _draw(rng, patterns, rows, noise)
            parts[f"{part}_x"].append(x)
            parts[f"{part}_y"].append(y)

    def split(name: str, rows: int) -> dict[str, Tensor]:
        return {
            "x": torch.as_tensor(np.stack(parts[f"{name}_x"]), dtype=torch.float32),
            "y": torch.as_tensor(np.stack(parts[f"{name}_y"]), dtype=torch.int64),
            "mask": torch.ones(n_tasks, rows),
            "class_mask": torch.ones(n_tasks, n_classes),
        }

    return split("train", shots), split("val", query_shots)


def _shapes(rng: np.random.Generator, rows: int, size: int) -> np.ndarray:
    """``rows`` images, each its own: a few random bumps and a soft edge of random direction (amplitudes about 1)."""
    grid = np.arange(size, dtype=float)
    yy, xx = grid[:, None], grid[None, :]
    out = np.zeros((rows, size, size))
    for image in out:
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.uniform(0, size - 1, 2)
            width = rng.uniform(0.8, size / 3)
            image += rng.choice([-1.0, 1.0]) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
        angle, offset = rng.uniform(0, 2 * np.pi), rng.uniform(-size / 3, size / 3)
        across = (yy - size / 2) * np.cos(angle) + (xx - size / 2) * np.sin(angle) - offset
        image += rng.uniform(0, 1) * np.tanh(across / rng.uniform(0.3, 1.5))
    return out


def shape_tasks(
    n_tasks: int, rng: np.random.Generator, *, size: int, shots: int, query_shots: int
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Images for autoencoders: every image its own bumps and edge (no classes), in light noise.

    Unlike :func:`image_tasks`' class patterns in heavy noise, these have structure in every image and
    little noise, so reconstructing them through a narrow code is learning, as on real images.
    """
    noise = rng.uniform(0.02, 0.2)
    train, val = (np.stack([_shapes(rng, rows, size) for _ in range(n_tasks)]) for rows in (shots, query_shots))
    scale = train.std()  # one scale for both splits: the held-out images are the same kind

    def split(x: np.ndarray) -> dict[str, Tensor]:
        x = x / scale + rng.normal(0, noise, x.shape)
        return {"x": torch.as_tensor(x[:, :, None], dtype=torch.float32), "mask": torch.ones(x.shape[:2])}

    return split(train), split(val)
