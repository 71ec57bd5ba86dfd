"""Meta-training across processes with :mod:`torch.distributed` (launched by ``torchrun``).

Every process of a run samples the same global meta-batch from ``(seed, iteration)`` and adapts its own
contiguous share of the tasks; one ``all_reduce`` per iteration then sums the shares' meta-gradients,
losses and metrics, each weighted by its share of the tasks, so that every process holds the mean over the
whole meta-batch (exactly, also when the meta-batch does not divide evenly) and takes the same outer step.
The processes stay identical without ever sending parameters. Process 0 alone writes checkpoints and the
artifact and shows the progress bar.

The collectives are plain ``all_reduce`` calls rather than ``DistributedDataParallel``: a learner's
meta-gradient does not come from one ``forward`` of one module (Reptile's is no autograd gradient at all),
and DDP's hooks would also average each share with equal weight, which is wrong for uneven shares.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

from ..exceptions import CheckpointError


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in a multi-process run: its ``rank`` among ``size`` processes, and its ``device``.

    Examples
    --------
    >>> group = ProcessGroup(rank=1, size=2)
    >>> group.shard(25), group.is_main, group.device
    (slice(12, 25, None), False, device(type='cpu'))
    """

    rank: int
    size: int
    device: torch.device = torch.device("cpu")  # where this process computes

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and shows progress (rank 0)."""
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This process's contiguous share of ``n`` tasks (sizes differ by at most one)."""
        return slice(self.rank * n // self.size, (self.rank + 1) * n // self.size)

    def on(self, device: torch.device) -> ProcessGroup:
        """This process computing on ``device``; an unnumbered ``cuda`` becomes its own GPU (``LOCAL_RANK``)."""
        if device.type == "cuda" and device.index is None:
            local = os.environ.get("LOCAL_RANK")
            device = torch.device("cuda", int(local) if local is not None else torch.cuda.current_device())
        return replace(self, device=device)

    @property
    def _wire(self) -> torch.device:
        # Where collectives run: CUDA tensors go over NCCL (or gloo); gloo takes no MPS tensors, so the CPU.
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def reduce(self, params: Sequence[torch.Tensor], logs: dict[str, float], weight: float) -> dict[str, float]:
        """Sum ``weight`` times each process's gradients (into ``.grad``) and ``logs``; return the summed logs.

        A parameter without a gradient here but with one elsewhere (a process whose share of the loss was
        not finite skips its backward pass) takes part with zeros; one without a gradient anywhere keeps
        none, as in one process.
        """
        device, keys = self._wire, sorted(logs)
        parts = [torch.tensor([p.grad is not None for p in params], dtype=torch.float64, device=device)]
        parts += [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(device, torch.float64)
            for p in params
        ]
        parts.append(torch.tensor([logs[k] for k in keys], dtype=torch.float64, device=device))
        flat = torch.cat(parts)
        flat[len(params) :] *= weight
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        has_grad, offset = flat[: len(params)].tolist(), len(params)
        for p, present in zip(params, has_grad):
            n = p.numel()
            p.grad = flat[offset : offset + n].reshape(p.shape).to(p.device, p.dtype) if present else None
            offset += n
        return dict(zip(keys, flat[offset:].tolist()))

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is True on any process."""
        t = torch.tensor([float(flag)], device=self._wire)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def check_same_position(self, position: int, unit: str) -> None:
        """Raise on every process unless all of them resumed at the same ``position``."""
        t = torch.tensor([float(position), -float(position)], device=self._wire)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        high, low = int(t[0].item()), int(-t[1].item())
        if high != low:
            raise CheckpointError(
                f"The processes of this run resumed at different {unit}s ({low} to {high}): they read "
                "different checkpoints. Give checkpoint_dir a folder every node reads (a shared file system)."
            )


def current_group(distributed: bool | None) -> ProcessGroup | None:
    """The process group a trainer with this ``distributed`` setting shards over, or None (one process).

    ``None`` uses the default :mod:`torch.distributed` process group when one is initialized with more than
    one process; ``True`` requires it; ``False`` ignores it.

    Raises
    ------
    RuntimeError
        ``distributed=True`` without an initialized process group.
    """
    if distributed is False:
        return None
    if not (dist.is_available() and dist.is_initialized()):
        if distributed:
            raise RuntimeError(
                "distributed=True needs an initialized torch.distributed process group: launch the script "
                "with torchrun and call torch.distributed.init_process_group() before fit() (the "
                "automl-meta meta-train command does both), or leave distributed unset."
            )
        return None
    size = dist.get_world_size()
    return ProcessGroup(dist.get_rank(), size) if size > 1 else None


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (its environment names a rank and a world size)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


@contextmanager
def process_group_from_environment() -> Iterator[None]:
    """Under ``torchrun``, the default process group for the duration: gloo for CPU tensors, NCCL for CUDA ones.

    Outside ``torchrun``, or when a process group exists already, it does nothing.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        yield
        return
    backend = "gloo"
    if torch.cuda.is_available() and dist.is_nccl_available():
        backend = "cpu:gloo,cuda:nccl"
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local < torch.cuda.device_count():  # more processes than GPUs: those beyond compute on the CPU
            torch.cuda.set_device(local)
    dist.init_process_group(backend)
    try:
        yield
    finally:
        dist.destroy_process_group()
