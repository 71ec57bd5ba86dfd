"""Meta-training: the outer loop, validation, checkpoints and callbacks."""

from .callbacks import Callback, EarlyStopping
from .trainer import MetaTrainer

__all__ = ["MetaTrainer", "Callback", "EarlyStopping"]
