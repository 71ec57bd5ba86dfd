"""Every search space gives valid, fittable configurations named like the estimators' arguments."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import BaseDistribution, CategoricalDistribution
from sklearn.base import clone, is_classifier
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from automl_meta import spaces
from automl_meta.spaces import SPACES, SearchSpace, for_estimator

optuna.logging.set_verbosity(optuna.logging.WARNING)

CASES = [(space, cls) for space in SPACES.values() for cls in space.estimators]
IDS = [cls.__name__ for _, cls in CASES]
PLAIN = (str, int, float, bool, type(None))


def _data(classifier: bool) -> tuple[np.ndarray, np.ndarray]:
    if classifier:  # three classes: every solver in the spaces must handle multiclass targets
        return make_classification(n_samples=120, n_features=6, n_informative=4, n_classes=3, random_state=0)
    X, y = make_regression(n_samples=120, n_features=6, noise=10.0, random_state=0)
    return X, (y - y.mean()) / y.std()  # unit-scale target, as the SVR epsilon range assumes


def _make(cls: type):
    """A small, seeded instance: forests at 20 trees keep the test fast (the spaces leave n_estimators alone);
    a fixed random_state keeps what converges independent of the global random state other tests leave."""
    params = cls().get_params()
    kwargs = {"n_estimators": 20} if "n_estimators" in params else {}
    return cls(**kwargs, **({"random_state": 0} if "random_state" in params else {}))


@pytest.fixture(autouse=True)
def _one_thread():
    # HistGradientBoosting's OpenMP threads are slower than one thread on tiny data on a shared machine.
    with threadpool_limits(1):
        yield


@pytest.mark.parametrize(("space", "cls"), CASES, ids=IDS)
def test_random_trials_fit(space: SearchSpace, cls: type) -> None:
    """20 seeded random configurations set, fit and score without errors and without a storm of warnings."""
    X, y = _data(is_classifier(cls()))
    pipe = make_pipeline(StandardScaler(), _make(cls))
    pspace = for_estimator(pipe)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    warned = 0
    for _ in range(20):
        trial = study.ask()
        params = pspace.suggest(trial)
        assert params == trial.params
        pspace.apply(pipe, params)  # the same Pipeline every trial: stale branches must be reset
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pipe.fit(X, y)
        # Only ConvergenceWarning is tolerated, and only rarely: MLP's 'lbfgs' with almost no alpha, or 'saga'
        # with a large C, may hit max_iter on this tiny data (one minibatch per epoch).
        assert [w for w in caught if not issubclass(w.category, ConvergenceWarning)] == []
        warned += any(issubclass(w.category, ConvergenceWarning) for w in caught)
        study.tell(trial, float(pipe.score(X, y)))
    assert warned <= 3, f"{warned} of 20 trials did not converge"


@pytest.mark.parametrize(("space", "cls"), CASES, ids=IDS)
def test_names_are_estimator_arguments(space: SearchSpace, cls: type) -> None:
    keys = set(cls().get_params())
    assert set(space.distributions()) <= keys
    assert set(space.fixed) <= keys
    assert for_estimator(cls) is space and for_estimator(cls()) is space
    # apply() resets an inactive conditional parameter to this default: it must be every class's default.
    for name in space.conditional:
        assert inspect.signature(cls).parameters[name].default == space.default(name)


@pytest.mark.parametrize("space", SPACES.values(), ids=list(SPACES))
def test_conditionals_only_when_their_condition_holds(space: SearchSpace) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        trial = study.ask()
        params = space.suggest(trial, prefix="m__")
        assert set(params) == space.active(params, prefix="m__")
        for name, cond in space.conditional.items():
            assert ("m__" + name in params) == (params.get("m__" + cond.parent) in cond.values)
        for name, value in params.items():
            assert type(value) in PLAIN, (name, value)  # plain Python, never numpy scalars
            assert trial.distributions[name] == space.distributions("m__")[name]
        study.tell(trial, 0.0)


@pytest.mark.parametrize("space", SPACES.values(), ids=list(SPACES))
def test_distributions_are_optunas(space: SearchSpace) -> None:
    for dist in space.distributions().values():
        assert isinstance(dist, BaseDistribution)
        if isinstance(dist, CategoricalDistribution):
            assert all(type(c) in PLAIN for c in dist.choices)
    assert set(space.distributions()) == set(space.params) | set(space.conditional)


def test_conditional_branches_are_reached() -> None:
    """The MLP's sgd branch and the forests' bootstrap branch each show up among random trials."""
    for space, parent, value, child in [
        (SPACES["mlp"], "solver", "sgd", "momentum"),
        (SPACES["mlp"], "solver", "lbfgs", None),
        (SPACES["random_forest"], "bootstrap", True, "max_samples"),
        (SPACES["logistic_regression"], "solver", "saga", "l1_ratio"),
    ]:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        seen = [space.suggest(study.ask()) for _ in range(30)]
        branch = [p for p in seen if p[parent] == value]
        assert branch, (space.name, parent, value)
        if child is not None:
            assert all(child in p for p in branch)
            assert not any(child in p for p in seen if p[parent] != value)


def test_pipeline_prefix() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    pipe = make_pipeline(StandardScaler(), HistGradientBoostingClassifier())
    space = for_estimator(pipe)
    assert space.prefix == "histgradientboostingclassifier__"
    assert "histgradientboostingclassifier__learning_rate" in space.distributions()
    assert space.fixed_params() == {"histgradientboostingclassifier__early_stopping": False}
    assert set(space.distributions()) <= set(pipe.get_params())
    # A nested Pipeline: prefixes compose from the outside in.
    outer = make_pipeline(StandardScaler(), clone(pipe))
    names = for_estimator(outer).distributions()
    assert "pipeline__histgradientboostingclassifier__max_iter" in names
    assert set(names) <= set(outer.get_params())
    # suggest's own prefix goes before the space's.
    study = optuna.create_study()
    assert all(k.startswith("cv__histgradientboostingclassifier__") for k in space.suggest(study.ask(), "cv__"))


def test_apply_resets_stale_branch() -> None:
    from sklearn.ensemble import RandomForestRegressor

    space = for_estimator(RandomForestRegressor)
    model = space.apply(RandomForestRegressor(), {"bootstrap": True, "max_samples": 0.5})
    assert model.max_samples == 0.5
    assert space.apply(model, {"bootstrap": False}).max_samples is None


def test_unknown_estimator_lists_supported() -> None:
    from sklearn.tree import DecisionTreeClassifier

    with pytest.raises(ValueError, match="No search space for DecisionTreeClassifier") as info:
        for_estimator(DecisionTreeClassifier())
    for name in spaces.available():
        assert name in str(info.value)
    with pytest.raises(ValueError, match="MLPClassifier"):
        for_estimator(make_pipeline(StandardScaler(), DecisionTreeClassifier()))


def test_subclass_gets_parent_space() -> None:
    from sklearn.svm import SVC

    class MySVC(SVC):
        pass

    assert for_estimator(MySVC) is SPACES["svc"]


def test_available_and_spaces() -> None:
    assert len(spaces.available()) == len(CASES) == 16
    assert spaces.available() == sorted(spaces.available())
    assert all(name == space.name for name, space in SPACES.items())
    with pytest.raises(TypeError):
        SPACES["svc"].params["C"] = None  # read-only: spaces are shared module state


def test_docs_table_is_current() -> None:
    from pathlib import Path

    page = Path(__file__).resolve().parents[2] / "docs" / "spaces.md"
    assert spaces.to_markdown() in page.read_text(), "regenerate the table with automl_meta.spaces.to_markdown()"
