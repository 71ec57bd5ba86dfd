"""Learned optimizers for plain PyTorch: :class:`LearnedOptimizer` is a ``torch.optim.Optimizer``.

Examples
--------
>>> import torch
>>> from automl_meta.optim import LearnedOptimizer
>>> model = torch.nn.Linear(3, 1)
>>> opt = LearnedOptimizer(model.parameters(), artifact="default-l2o")
>>> loss = model(torch.ones(8, 3)).square().mean()
>>> loss.backward()
>>> opt.step()
"""

from .learned import LearnedOptimizer

__all__ = ["LearnedOptimizer"]
