"""automl-meta: meta-trained initialisations, learning rates and update rules.

Meta-train a learner across many tasks, save it as an artifact, and give a new
task a learned starting point and learned step sizes instead of hand-tuned
SGD/Adam settings.

Examples
--------
>>> import automl_meta as am
>>> learner = am.learners.MetaSGD(am.models.MLP([40, 40]), inner_steps=1)
>>> artifact = am.MetaTrainer(learner, am.tasks.Sinusoid(shots=10), iterations=10, verbose=0).fit()
>>> artifact.manifest["learner"]["name"]
'metasgd'
"""

from . import artifacts, engine, learners, models, optim, tasks
from ._version import __version__
from .artifacts import MetaArtifact, load
from .exceptions import ArtifactError, CheckpointError, MetaTrainingError, StoreError, StoreSchemaError, TaskError
from .training import MetaTrainer, meta_fit

__all__ = [
    "MetaTrainer",
    "meta_fit",
    "MetaArtifact",
    "load",
    "tasks",
    "models",
    "learners",
    "engine",
    "artifacts",
    "optim",
    "TaskError",
    "ArtifactError",
    "MetaTrainingError",
    "CheckpointError",
    "StoreError",
    "StoreSchemaError",
    "__version__",
]
