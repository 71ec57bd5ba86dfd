"""Backbone networks that learners adapt.

A model is an ``nn.Module`` with ``build(in_features, out_features, generator)``,
``head_names`` and ``get_config()``; :func:`from_config` rebuilds one from its
config, which is how artifacts store architectures as data rather than code.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .mlp import MLP
from .tabular import TabularNet

MODELS: dict[str, type[nn.Module]] = {"MLP": MLP, "TabularNet": TabularNet}


def from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild a model from ``model.get_config()``.

    Examples
    --------
    >>> from automl_meta.models import MLP, from_config
    >>> from_config(MLP([8], in_features=2, out_features=1).get_config()).hidden_sizes
    [8]
    """
    config = dict(config)
    name = config.pop("name", None)
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; known models are {sorted(MODELS)}.")
    return MODELS[name](**config)


__all__ = ["MLP", "TabularNet", "from_config", "MODELS"]
