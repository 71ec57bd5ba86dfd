"""Meta-learners, one module per algorithm.

====================  ==========================================  ===================
class                 algorithm                                   meta-learns
====================  ==========================================  ===================
:class:`MAML`         MAML, second order (``first_order`` opt.)   init
:class:`FirstOrderMAML` first-order MAML                          init
:class:`MetaSGD`      Meta-SGD                                    init, lr
:class:`Reptile`      Reptile                                     init
:class:`ANIL`         ANIL (head-only inner loop)                 init
====================  ==========================================  ===================
"""

from __future__ import annotations

from typing import Any

from .anil import ANIL
from .base import AdaptedModel, Learner
from .maml import MAML, FirstOrderMAML
from .metasgd import MetaSGD
from .reptile import Reptile

LEARNERS: dict[str, type[Learner]] = {c.name: c for c in (MAML, FirstOrderMAML, MetaSGD, Reptile, ANIL)}


def from_config(config: dict[str, Any]) -> Learner:
    """Rebuild a learner from ``learner.get_config()``."""
    name = config.get("name")
    if name not in LEARNERS:
        raise ValueError(f"Unknown learner {name!r}; known learners are {sorted(LEARNERS)}.")
    return LEARNERS[name].from_config(config)


__all__ = ["Learner", "AdaptedModel", "MAML", "FirstOrderMAML", "MetaSGD", "Reptile", "ANIL", "LEARNERS",
           "from_config"]
