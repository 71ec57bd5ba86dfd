"""The networks of the learned optimizers' training problems, as pure functions of a parameter dict.

Each ``*_apply`` maps ``(params, x)`` to outputs for one task, so it vmaps over a task axis; each
``init_*`` draws ``n_tasks`` networks' parameters with PyTorch's default initialisation (uniform within
``1 / sqrt(fan_in)``), with a leading task axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

Params = dict[str, Tensor]
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
    return _layers({f"w{i}": (b, a) for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))}, n_tasks, rng)


def cnn_apply(params: Params, x: Tensor, activation: str = "relu") -> Tensor:
    """Two 3 x 3 convolutions (padding 1), global average pooling and a linear head: ``{"w0", ..., "b2"}``."""
    act = ACTIVATIONS[activation]
    h = act(torch.nn.functional.conv2d(x, params["w0"], params["b0"], padding=1))
    h = act(torch.nn.functional.conv2d(h, params["w1"], params["b1"], padding=1))
    return h.mean((-2, -1)) @ params["w2"].T + params["b2"]


def init_cnn(channels: Sequence[int], n_out: int, n_tasks: int, rng: np.random.Generator) -> Params:
    """PyTorch's default initialisation of :func:`cnn_apply`'s parameters."""
    c0, c1, c2 = channels
    weights = {"w0": (c1, c0, 3, 3), "w1": (c2, c1, 3, 3), "w2": (n_out, c2)}
    return _layers(weights, n_tasks, rng)


def conv_autoencoder_apply(params: Params, x: Tensor, activation: str = "relu") -> Tensor:
    """A 3 x 3 convolution of stride 2 (the code, half the side), a 3 x 3 convolution on it, and a 4 x 4
    transposed convolution of stride 2 back to the input's shape (even sides): ``{"w0", ..., "b2"}``."""
    act = ACTIVATIONS[activation]
    h = act(torch.nn.functional.conv2d(x, params["w0"], params["b0"], stride=2, padding=1))
    h = act(torch.nn.functional.conv2d(h, params["w1"], params["b1"], padding=1))
    return torch.nn.functional.conv_transpose2d(h, params["w2"], params["b2"], stride=2, padding=1)


def init_conv_autoencoder(channels: Sequence[int], n_tasks: int, rng: np.random.Generator) -> Params:
    """PyTorch's default initialisation of :func:`conv_autoencoder_apply`'s parameters (``channels``: the
    two convolutions' outputs)."""
    c1, c2 = channels
    # A transposed convolution's weight is (in, out, k, k): its bias is per axis-1 channel.
    weights = {"w0": (c1, 1, 3, 3), "w1": (c2, c1, 3, 3), "w2": (c2, 1, 4, 4)}
    return _layers(weights, n_tasks, rng, out_axis={"w2": 1})


def _layers(
    weights: Mapping[str, tuple[int, ...]],
    n_tasks: int,
    rng: np.random.Generator,
    out_axis: dict[str, int] | None = None,
) -> Params:
    """Weights of the given shapes and a bias per output channel (axis 0, or ``out_axis``), drawn in order.

    The fan-in is PyTorch's: the product of a weight's axes but the first, for transposed convolutions too.
    """
    params = {}
    for i, (name, shape) in enumerate(weights.items()):  # the random stream is this order: w0, b0, w1, ...
        bound = 1 / math.sqrt(int(np.prod(shape[1:])))
        bias = (shape[(out_axis or {}).get(name, 0)],)
        for key, size in ((name, shape), (f"b{i}", bias)):
            params[key] = torch.as_tensor(rng.uniform(-bound, bound, size=(n_tasks, *size)), dtype=torch.float32)
    return params
