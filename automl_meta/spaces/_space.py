"""The search-space record: distributions named like an estimator's arguments, with their conditions."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, cast

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import BaseTrial

__all__ = ["Condition", "SearchSpace"]

_PLAIN = (str, int, float, bool, type(None))


@dataclasses.dataclass(frozen=True)
class Condition:
    """A conditional parameter: it exists only while ``parent`` takes one of ``values``.

    Parameters
    ----------
    distribution : optuna.distributions.BaseDistribution
        The parameter's distribution while it is active.
    parent : str
        The unprefixed name of the parameter it depends on (suggested before it).
    values : tuple
        The parent's values under which the parameter is active.

    Examples
    --------
    >>> from optuna.distributions import FloatDistribution
    >>> cond = Condition(FloatDistribution(0.0, 0.99), "solver", ("sgd",))
    >>> cond.holds({"solver": "sgd"}), cond.holds({"solver": "adam"}), cond.holds({})
    (True, False, False)
    """

    distribution: BaseDistribution
    parent: str
    values: tuple

    def holds(self, params: Mapping[str, Any], prefix: str = "") -> bool:
        """Whether the parent (named ``prefix + parent`` in ``params``) takes one of the values."""
        key = prefix + self.parent
        return key in params and params[key] in self.values


@dataclasses.dataclass(frozen=True, eq=False)
class SearchSpace:
    """The search space of one estimator family, named exactly like the estimators' arguments.

    Parameters
    ----------
    name : str
        A short identifier, e.g. ``"hist_gradient_boosting"``.
    estimators : tuple of type
        The scikit-learn classes the space serves.
    params : Mapping[str, BaseDistribution]
        The unconditional parameters, suggested in this order.
    conditional : Mapping[str, Condition]
        The conditional parameters, suggested after the unconditional ones in this order (a parent must come
        earlier: a conditional parameter may depend on another conditional one).
    fixed : Mapping[str, Any]
        Settings the space always applies (see :meth:`apply`), never tuned.
    prefix : str
        Prepended to every name, e.g. ``"svc__"`` for a Pipeline's step; see :meth:`with_prefix`.
    doc : str
        One line on the space's ranges and fixed settings.

    Examples
    --------
    >>> import optuna
    >>> from automl_meta.spaces import for_estimator
    >>> from sklearn.svm import SVC
    >>> space = for_estimator(SVC())
    >>> sorted(space.distributions())
    ['C', 'gamma']
    >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    >>> params = space.suggest(study.ask())
    >>> space.apply(SVC(), params).kernel
    'rbf'
    """

    name: str
    estimators: tuple[type, ...]
    params: Mapping[str, BaseDistribution]
    conditional: Mapping[str, Condition] = dataclasses.field(default_factory=dict)
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    prefix: str = ""
    doc: str = ""

    def __post_init__(self) -> None:
        # Read-only views: a space is shared module state and must not change under a user's feet.
        for field in ("params", "conditional", "fixed"):
            object.__setattr__(self, field, MappingProxyType(dict(getattr(self, field))))
        seen = set(self.params)
        for name, cond in self.conditional.items():
            if cond.parent not in seen:
                raise ValueError(f"{self.name}: conditional parameter {name!r} comes before its parent {cond.parent!r}")
            seen.add(name)
        for dist in self.distributions().values():
            if isinstance(dist, CategoricalDistribution) and not all(isinstance(c, _PLAIN) for c in dist.choices):
                raise TypeError(f"{self.name}: categorical choices must be plain Python values, got {dist.choices}")

    def with_prefix(self, prefix: str) -> SearchSpace:
        """The same space with ``prefix`` put before the names (before any prefix it already has).

        Examples
        --------
        >>> from automl_meta.spaces import for_estimator
        >>> from sklearn.svm import SVR
        >>> sorted(for_estimator(SVR).with_prefix("svr__").distributions())
        ['svr__C', 'svr__epsilon', 'svr__gamma']
        """
        return dataclasses.replace(self, prefix=prefix + self.prefix)

    def distributions(self, prefix: str = "") -> dict[str, BaseDistribution]:
        """Every parameter's distribution, conditional ones included (the union of all branches).

        Examples
        --------
        >>> from automl_meta.spaces import for_estimator
        >>> from sklearn.linear_model import Ridge
        >>> for_estimator(Ridge).distributions("ridge__")
        {'ridge__alpha': FloatDistribution(high=10000.0, log=True, low=0.0001, step=None)}
        """
        full = prefix + self.prefix
        out = {full + name: dist for name, dist in self.params.items()}
        out.update({full + name: cond.distribution for name, cond in self.conditional.items()})
        return out

    def fixed_params(self, prefix: str = "") -> dict[str, Any]:
        """The fixed settings under their (prefixed) names, as :meth:`apply` sets them."""
        full = prefix + self.prefix
        return {full + name: value for name, value in self.fixed.items()}

    def suggest(self, trial: BaseTrial, prefix: str = "") -> dict[str, Any]:
        """Suggest a configuration define-by-run: conditional parameters only while their condition holds.

        Parameters
        ----------
        trial : optuna.trial.BaseTrial
            The trial to suggest from (a ``Trial`` from ``study.ask()`` or an objective's argument).
        prefix : str, default=""
            Put before every name (before the space's own prefix), e.g. ``"model__"``.

        Returns
        -------
        dict
            The suggested values under their (prefixed) names; fixed settings are not included (see
            :meth:`apply`). The names and values equal what the trial records in ``trial.params``.

        Examples
        --------
        >>> import optuna
        >>> from automl_meta.spaces import for_estimator
        >>> from sklearn.neural_network import MLPClassifier
        >>> space = for_estimator(MLPClassifier)
        >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        >>> study.enqueue_trial({"solver": "lbfgs"})
        >>> params = space.suggest(study.ask())
        >>> params["solver"], "learning_rate_init" in params, "momentum" in params
        ('lbfgs', False, False)
        """
        full = prefix + self.prefix
        out = {full + name: _suggest(trial, full + name, dist) for name, dist in self.params.items()}
        for name, cond in self.conditional.items():
            if cond.holds(out, full):
                out[full + name] = _suggest(trial, full + name, cond.distribution)
        return out

    def apply(self, estimator: Any, params: Mapping[str, Any], prefix: str = "") -> Any:
        """Set the fixed settings, defaults for inactive conditional parameters, then ``params``; return it.

        Conditional parameters missing from ``params`` go back to the estimator's defaults, so an estimator
        reused across trials never keeps a value from an earlier branch (e.g. ``max_samples`` of a forest
        after ``bootstrap`` turned False, which scikit-learn refuses).

        Examples
        --------
        >>> from automl_meta.spaces import for_estimator
        >>> from sklearn.linear_model import LogisticRegression
        >>> space = for_estimator(LogisticRegression)
        >>> model = space.apply(LogisticRegression(), {"C": 0.5, "solver": "saga", "l1_ratio": 0.3})
        >>> model.C, model.max_iter, model.l1_ratio
        (0.5, 1000, 0.3)
        >>> space.apply(model, {"C": 2.0, "solver": "lbfgs"}).l1_ratio
        0.0
        """
        return estimator.set_params(**self.settings(params, prefix))

    def settings(self, params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        """Everything :meth:`apply` sets, in its order: fixed settings, inactive conditionals' defaults, ``params``.

        ``estimator.set_params(**space.settings(params))`` is ``space.apply(estimator, params)``.

        Examples
        --------
        >>> from automl_meta.spaces import for_estimator
        >>> from sklearn.svm import SVC
        >>> for_estimator(SVC).settings({"C": 2.0, "gamma": 0.1})
        {'kernel': 'rbf', 'C': 2.0, 'gamma': 0.1}
        """
        full = prefix + self.prefix
        defaults = {full + name: self.default(name) for name in self.conditional if full + name not in params}
        return {**self.fixed_params(prefix), **defaults, **params}

    def default(self, name: str) -> Any:
        """The estimators' constructor default of an (unprefixed) argument.

        Examples
        --------
        >>> from automl_meta.spaces import SPACES
        >>> SPACES["mlp"].default("momentum")
        0.9
        """
        return inspect.signature(self.estimators[0]).parameters[name].default

    def active(self, params: Mapping[str, Any], prefix: str = "") -> set[str]:
        """The (prefixed) names that a configuration with these values may hold: conditions that hold only.

        Examples
        --------
        >>> from automl_meta.spaces import for_estimator
        >>> from sklearn.neural_network import MLPRegressor
        >>> sorted(for_estimator(MLPRegressor).active({"solver": "adam"}) - {"activation", "alpha"})
        ['hidden_layer_sizes', 'learning_rate_init', 'solver']
        """
        full = prefix + self.prefix
        names = {full + name for name in self.params}
        for name, cond in self.conditional.items():
            if cond.holds(params, full) and full + cond.parent in names:
                names.add(full + name)
        return names

    def rows(self) -> list[tuple[str, str, str]]:
        """One ``(name, range, condition)`` row per parameter, in suggestion order (for documentation)."""
        rows = [(self.prefix + name, _describe(dist), "") for name, dist in self.params.items()]
        for name, cond in self.conditional.items():
            when = " or ".join(repr(v) for v in cond.values)
            rows.append((self.prefix + name, _describe(cond.distribution), f"`{cond.parent}` is {when}"))
        return rows

    def __repr__(self) -> str:
        names = ", ".join(self.distributions())
        return f"SearchSpace({self.name!r}, prefix={self.prefix!r}, params=[{names}])"


def _suggest(trial: BaseTrial, name: str, dist: BaseDistribution) -> Any:
    """Suggest through the public ``suggest_*`` API, so samplers see an ordinary define-by-run trial."""
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    raise TypeError(f"unsupported distribution for {name!r}: {dist!r}")


def _describe(dist: BaseDistribution) -> str:
    """A short, human-readable range, e.g. ``float, log [0.01, 1]`` or ``{'relu', 'tanh'}``."""
    if isinstance(dist, CategoricalDistribution):
        return "{" + ", ".join(repr(c) for c in dist.choices) + "}"
    kind = "float" if isinstance(dist, FloatDistribution) else "int"
    dist = cast("FloatDistribution | IntDistribution", dist)  # not categorical: Optuna's others are these two
    scale = ", log" if dist.log else ""
    step = f", step {dist.step:g}" if dist.step not in (None, 1) else ""
    return f"{kind}{scale}{step} [{dist.low:g}, {dist.high:g}]"
