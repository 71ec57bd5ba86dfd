"""The tensor shapes a manifest's learner description implies, found without allocating its parameters.

A manifest is untrusted input: ``TabularNet(hidden=200000, depth=10**6)`` would
exhaust memory if built. The learner is built on PyTorch's ``meta`` device
(shapes, no storage), and the build stops as soon as it registers more tensors
than the file holds, so neither the tensors nor millions of modules get made.
"""

from __future__ import annotations

import threading
from typing import Any

import torch
from torch.nn.modules import module as _module

from .. import learners as _learners
from ..exceptions import ArtifactError

# Tensors a build may register beyond those the file holds before it is stopped (a margin for
# parameters re-registered while building; the exact comparison follows).
_SLACK = 8


class _TooManyTensors(Exception):
    pass


def expected_shapes(config: dict[str, Any], n_tensors: int, source: object) -> dict[str, tuple[int, ...]]:
    """Shapes of the state of the learner ``config`` describes, by name.

    Raises
    ------
    ArtifactError
        The learner cannot be built from ``config``, or has more than
        ``n_tensors`` tensors (the file cannot match it).
    """
    budget = [n_tensors + _SLACK]
    thread = threading.get_ident()

    def count(*_: Any) -> None:
        if threading.get_ident() == thread:  # other threads may build modules meanwhile
            budget[0] -= 1
            if budget[0] < 0:
                raise _TooManyTensors

    handles = [
        _module.register_module_parameter_registration_hook(count),
        _module.register_module_buffer_registration_hook(count),
    ]
    try:
        with torch.device("meta"):
            learner = _learners.from_config(config)
    except _TooManyTensors:
        raise ArtifactError(
            f"'{source}' does not match its learner's architecture: the manifest describes a "
            f"learner of more than {n_tensors} tensors, the file holds {n_tensors}. The file is "
            "damaged or crafted; re-create or re-download it."
        ) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise ArtifactError(f"'{source}' describes a learner this automl-meta cannot build: {exc}") from None
    finally:
        for handle in handles:
            handle.remove()
    return {k: tuple(v.shape) for k, v in learner.state_dict().items()}


def check(config: dict[str, Any], found: dict[str, tuple[int, ...]], source: object) -> None:
    """Refuse tensors whose names or shapes differ from those the learner ``config`` implies."""
    expected = expected_shapes(config, len(found), source)
    if expected != found:
        problems = sorted(
            f"{k}: expected {expected.get(k)}, found {found.get(k)}"
            for k in expected.keys() | found.keys()
            if expected.get(k) != found.get(k)
        )
        raise ArtifactError(f"'{source}' does not match its learner's architecture ({'; '.join(problems[:5])}).")
