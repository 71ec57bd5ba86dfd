"""All search spaces, and the lookup from an estimator (or a Pipeline) to its space."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from ._linear import ELASTIC_NET, LOGISTIC_REGRESSION, RIDGE
from ._mlp import MLP
from ._neighbors import K_NEIGHBORS
from ._space import SearchSpace
from ._svm import SVC_RBF, SVR_RBF
from ._trees import EXTRA_TREES, HIST_GRADIENT_BOOSTING, RANDOM_FOREST

__all__ = ["SPACES", "available", "for_estimator", "to_markdown"]

_ALL = (
    HIST_GRADIENT_BOOSTING,
    RANDOM_FOREST,
    EXTRA_TREES,
    LOGISTIC_REGRESSION,
    RIDGE,
    ELASTIC_NET,
    SVC_RBF,
    SVR_RBF,
    K_NEIGHBORS,
    MLP,
)

#: Every search space by its name, e.g. ``SPACES["svc"]``.
SPACES = MappingProxyType({space.name: space for space in _ALL})

_BY_CLASS = {cls: space for space in _ALL for cls in space.estimators}


def available() -> list[str]:
    """The names of the estimator classes that have a search space, sorted.

    Examples
    --------
    >>> from automl_meta.spaces import available
    >>> "HistGradientBoostingClassifier" in available(), len(available())
    (True, 16)
    """
    return sorted(cls.__name__ for cls in _BY_CLASS)


def for_estimator(estimator: Any) -> SearchSpace:
    """The search space of an estimator instance or class, or of a Pipeline's final step.

    Parameters
    ----------
    estimator : estimator instance, estimator class or sklearn.pipeline.Pipeline
        A Pipeline (also nested) gives its final step's space with the ``step__`` prefix that
        ``Pipeline.set_params`` expects. A subclass of a supported estimator gets its parent's space.

    Returns
    -------
    SearchSpace

    Raises
    ------
    ValueError
        If there is no space for the estimator (or the Pipeline's final step); the message lists the
        supported estimators.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.ensemble import HistGradientBoostingClassifier
    >>> space = for_estimator(make_pipeline(StandardScaler(), HistGradientBoostingClassifier()))
    >>> space.name, list(space.distributions())[0]
    ('hist_gradient_boosting', 'histgradientboostingclassifier__learning_rate')
    """
    steps = getattr(estimator, "steps", None)
    if not isinstance(estimator, type) and isinstance(steps, list) and steps:
        name, last = steps[-1]
        return for_estimator(last).with_prefix(f"{name}__")
    cls = estimator if isinstance(estimator, type) else type(estimator)
    for base in cls.__mro__:  # the class itself first, then its parents
        if base in _BY_CLASS:
            return _BY_CLASS[base]
    raise ValueError(f"No search space for {cls.__name__}. Supported estimators: {', '.join(available())}.")


def to_markdown() -> str:
    """A Markdown table of every space's parameters, ranges and conditions (the table in ``docs/spaces.md``).

    Examples
    --------
    >>> print(to_markdown().splitlines()[0])
    | space | estimators | parameter | range | only when |
    """
    lines = ["| space | estimators | parameter | range | only when |", "|---|---|---|---|---|"]
    for space in _ALL:
        classes = ", ".join(cls.__name__ for cls in space.estimators)
        for i, (name, rng, when) in enumerate(space.rows()):
            first = (f"`{space.name}`", classes) if i == 0 else ("", "")
            lines.append(f"| {first[0]} | {first[1]} | `{name}` | {rng} | {when} |")
    return "\n".join(lines)
