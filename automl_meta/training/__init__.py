"""Meta-training: the outer loop, validation, checkpoints and callbacks."""

from .callbacks import Callback, EarlyStopping
from .family import meta_fit
from .trainer import MetaTrainer

__all__ = ["MetaTrainer", "meta_fit", "Callback", "EarlyStopping"]
