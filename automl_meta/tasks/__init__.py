"""Tasks and task distributions: what meta-learning learns across.

Examples
--------
>>> from automl_meta.tasks import Sinusoid
>>> Sinusoid(shots=10).sample(25, rng=0).x_support.shape
torch.Size([25, 10, 1])
"""

from typing import Any

from ..exceptions import TaskError
from .batch import Task, TaskBatch
from .corpus_tabular import CorpusTabular
from .datasets import DatasetTasks, from_datasets, from_groups
from .distribution import TaskDistribution
from .mixture import MixtureTasks
from .optimizee import OptimizeeBatch, OptimizeeTasks
from .sinusoid import Sinusoid
from .tabular import SyntheticTabular

FAMILIES: dict[str, type[TaskDistribution]] = {"Sinusoid": Sinusoid, "SyntheticTabular": SyntheticTabular}


def from_config(description: dict[str, Any]) -> TaskDistribution:
    """Rebuild a task family from ``family.describe()`` (as stored in artifact manifests).

    Examples
    --------
    >>> from automl_meta.tasks import Sinusoid, from_config
    >>> from_config(Sinusoid(shots=5).describe()).shots
    5
    """
    name, config = description.get("family"), description.get("config")
    if name not in FAMILIES or config is None:
        raise TaskError(
            f"The task family {name!r} cannot be rebuilt from its description (built-in families: "
            f"{sorted(FAMILIES)}; families made from your data must be passed explicitly)."
        )
    return FAMILIES[name](**config)


__all__ = [
    "from_config",
    "FAMILIES",
    "Task",
    "TaskBatch",
    "TaskDistribution",
    "Sinusoid",
    "SyntheticTabular",
    "DatasetTasks",
    "CorpusTabular",
    "MixtureTasks",
    "OptimizeeTasks",
    "OptimizeeBatch",
    "from_groups",
    "from_datasets",
]
