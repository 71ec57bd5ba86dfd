"""Tasks and task distributions: what meta-learning learns across.

Examples
--------
>>> from automl_meta.tasks import Sinusoid
>>> Sinusoid(shots=10).sample(25, rng=0).x_support.shape
torch.Size([25, 10, 1])
"""

from .batch import Task, TaskBatch
from .datasets import DatasetTasks, from_datasets, from_groups
from .distribution import TaskDistribution
from .sinusoid import Sinusoid
from .tabular import SyntheticTabular

__all__ = ["Task", "TaskBatch", "TaskDistribution", "Sinusoid", "SyntheticTabular", "DatasetTasks",
           "from_groups", "from_datasets"]
