"""Meta-learners, one module per algorithm.

====================  ==========================================  ===================
class                 algorithm                                   meta-learns
====================  ==========================================  ===================
:class:`MAML`         MAML, second order (``first_order`` opt.)   init
:class:`FirstOrderMAML` first-order MAML                          init
:class:`MetaSGD`      Meta-SGD                                    init, lr
:class:`Reptile`      Reptile                                     init
:class:`ANIL`         ANIL (head-only inner loop)                 init
:class:`IMAML`        iMAML (implicit gradient, proximal inner)   init
====================  ==========================================  ===================

Learned optimizers (:class:`UpdateRule` subclasses, meta-trained with
:class:`automl_meta.training.UnrolledTrainer` and used through
:class:`automl_meta.optim.LearnedOptimizer`):

=========================  ==============================================  ===========
class                      algorithm                                       meta-learns
=========================  ==============================================  ===========
:class:`LSTMOptimizer`     coordinate-wise LSTM (Andrychowicz et al. 2016)  update_rule
:class:`MLPOptimizer`      per-parameter MLP (after Metz et al. 2022)       update_rule
:class:`HyperController`   LSTM setting SGD-momentum/Adam rates per tensor  update_rule
=========================  ==============================================  ===========
"""

from __future__ import annotations

from typing import Any

from .anil import ANIL
from .base import AdaptedModel, Learner
from .hyper_controller import HyperController
from .imaml import IMAML
from .lstm_optimizer import LSTMOptimizer
from .maml import MAML, FirstOrderMAML
from .metasgd import MetaSGD
from .mlp_optimizer import MLPOptimizer
from .reptile import Reptile
from .update_rule import UpdateRule

LEARNERS: dict[str, type[Learner]] = {c.name: c for c in (MAML, FirstOrderMAML, MetaSGD, Reptile, ANIL, IMAML)}
UPDATE_RULES: dict[str, type[UpdateRule]] = {c.name: c for c in (LSTMOptimizer, MLPOptimizer, HyperController)}


def from_config(config: dict[str, Any]) -> Learner | UpdateRule:
    """Rebuild a learner or a learned optimizer's update rule from its ``get_config()``."""
    name = config.get("name")
    known: dict[str, type[Learner] | type[UpdateRule]] = {**LEARNERS, **UPDATE_RULES}
    if name not in known:
        raise ValueError(
            f"Unknown learner {name!r}; known learners are {sorted(LEARNERS)} and learned "
            f"optimizers {sorted(UPDATE_RULES)}."
        )
    return known[name].from_config(config)


__all__ = [
    "Learner",
    "AdaptedModel",
    "MAML",
    "FirstOrderMAML",
    "MetaSGD",
    "Reptile",
    "ANIL",
    "IMAML",
    "LEARNERS",
    "from_config",
    "UpdateRule",
    "LSTMOptimizer",
    "MLPOptimizer",
    "HyperController",
    "UPDATE_RULES",
]
