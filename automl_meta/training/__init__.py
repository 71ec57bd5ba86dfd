"""Meta-training: the outer loop, validation, checkpoints and callbacks."""

from .callbacks import Callback, EarlyStopping
from .family import meta_fit
from .trainer import MetaTrainer
from .unrolled import UnrolledTrainer

__all__ = ["MetaTrainer", "UnrolledTrainer", "meta_fit", "Callback", "EarlyStopping"]
