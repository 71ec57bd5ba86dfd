"""Search spaces for scikit-learn's estimators, named exactly like the estimators' arguments.

A space holds Optuna distributions for an estimator family's tuned arguments, the conditional ones with
their condition (e.g. ``momentum`` only when ``solver == "sgd"``), and the fixed settings it always applies.
Names match ``get_params()`` keys (``step__name`` inside a Pipeline), so a user's study and past tuning runs
meet by name. Not imported by ``import automl_meta``: import ``automl_meta.spaces`` explicitly.

Examples
--------
>>> import optuna
>>> from sklearn.neural_network import MLPClassifier
>>> from automl_meta import spaces
>>> space = spaces.for_estimator(MLPClassifier())
>>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
>>> params = space.suggest(study.ask())
>>> model = space.apply(MLPClassifier(), params)
>>> set(params) <= set(model.get_params())
True
"""

from ._lookup import SPACES, available, for_estimator, to_markdown
from ._space import Condition, SearchSpace

__all__ = ["SearchSpace", "Condition", "SPACES", "available", "for_estimator", "to_markdown"]
