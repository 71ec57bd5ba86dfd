"""Where tensors live: one check of a user's ``device=`` setting, shared by trainers, artifacts and estimators.

A device is given as ``"cpu"``, ``"cuda"`` (``"cuda:1"``), ``"mps"`` or a :class:`torch.device`. It is
checked when it is given, so that a run asking for a GPU this machine lacks fails at once with what to
do, not after hours of set-up. Apple's MPS backend has no float64: asking for float64 there is refused
with the same kind of message.
"""

from __future__ import annotations

import torch

DEVICE_TYPES = ("cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device | None, dtype: torch.dtype | None = None) -> torch.device:
    """``device`` as a :class:`torch.device` this machine has (None means the CPU).

    Parameters
    ----------
    device : str, torch.device or None
        ``"cpu"``, ``"cuda"``, ``"cuda:<index>"``, ``"mps"`` or a :class:`torch.device`.
    dtype : torch.dtype, optional
        The floating-point type that will be computed in there (float64 is refused on MPS).

    Raises
    ------
    ValueError
        ``device`` is not a device, names a device type other than those above, names a GPU this
        machine does not have, or cannot compute in ``dtype``.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("tpu")
    Traceback (most recent call last):
    ...
    ValueError: device must be 'cpu', 'cuda', 'cuda:<index>', 'mps' or a torch.device, got 'tpu'.
    """
    if device is None:
        return torch.device("cpu")
    try:
        resolved = torch.device(device) if isinstance(device, str) else device
    except RuntimeError:
        resolved = None
    if not isinstance(resolved, torch.device) or resolved.type not in DEVICE_TYPES:
        raise ValueError(
            f"device must be 'cpu', 'cuda', 'cuda:<index>', 'mps' or a torch.device, got {device!r}."
        ) from None
    if resolved.type == "cuda":
        _check_cuda(resolved)
    if resolved.type == "mps":
        if not _mps_available():
            raise ValueError(
                "device='mps' was asked for, but this machine (or this PyTorch build) has no MPS "
                "device (torch.backends.mps.is_available() is False): use device='cpu'."
            )
        if dtype == torch.float64:
            raise ValueError(
                "The MPS device does not compute in float64: use dtype=torch.float32 there, or device='cpu'."
            )
    return resolved


def _check_cuda(device: torch.device) -> None:
    if not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} was asked for, but CUDA is not available here "
            "(torch.cuda.is_available() is False: no NVIDIA GPU, or a CPU-only PyTorch build): use device='cpu'."
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ValueError(
            f"device={str(device)!r} was asked for, but this machine has {count} CUDA device(s) "
            f"(cuda:0 to cuda:{count - 1})."
        )


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (the CPU for a module without parameters)."""
    first = next(iter(module.parameters()), None)
    return torch.device("cpu") if first is None else first.device
