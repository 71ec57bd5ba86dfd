"""scikit-learn estimators that start from a meta-learned initialisation and learned step sizes.

:class:`MetaLearnedClassifier` and :class:`MetaLearnedRegressor` adapt a
meta-trained learner (an artifact) to the training data in a few learned
gradient steps instead of training a network from scratch with hand-tuned
settings. They follow scikit-learn's estimator contract: parameters stored
untouched in ``__init__``, validation in ``fit``, fitted attributes ending in
``_``, and ``clone``/``Pipeline``/``GridSearchCV``/pickling all work.

:class:`MetaSearchCV` tunes any estimator that has a search space in
:mod:`automl_meta.spaces` (or any space given as Optuna distributions), like
``GridSearchCV``, starting from configurations that worked on similar datasets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets

from automl_meta.artifacts._scaling import _from_standard, _mean_scale, _to_standard

from ._sklearn_base import _MetaLearnedEstimator
from ._sklearn_members import _chunk_targets, _combine_chunks, _feature_views, _target_chunks
from ._sklearn_output_code import _class_scores, _decode, _fit_temperature, _output_code
from ._sklearn_prior import _class_prior, _fit_prior_weight
from ._sklearn_search import MetaSearchCV

if TYPE_CHECKING:
    from sklearn.utils import Tags
    from typing_extensions import Self

__all__ = ["MetaLearnedClassifier", "MetaLearnedRegressor", "MetaSearchCV"]


class MetaLearnedClassifier(ClassifierMixin, _MetaLearnedEstimator):
    """Classifier adapted in a few learned steps from a meta-trained initialisation.

    X may hold missing values (NaN) and, in a pandas DataFrame, ``category``, ``object``, string
    and boolean columns: they are encoded inside the estimator (``encoder_``) by median imputation
    with a missing-value indicator and one-hot encoding. Numeric input without NaN is used as given.

    A universal artifact's model takes at most ``in_features`` features and has ``out_features``
    outputs (128 and 10 for ``"default-tabular"``); the classifier serves any table all the same:

    - *Wider tables*: each ensemble member sees a random subset of ``in_features`` (encoded)
      features, with enough members (whole rounds of disjoint subsets, at least ``n_ensemble``
      members) that every feature is seen; ``member_features_`` holds each member's columns.
    - *More classes*: an output code. Each member is adapted to a random balanced grouping of the
      classes into ``out_features`` groups (``output_code_``), with enough members that every pair
      of classes is told apart by several of them.

    In both cases the members' log-probabilities of each class (through its group) are averaged
    and turned into probabilities with a temperature (``temperature_``) fitted on the held-out
    folds of the cross-validation, so that ``predict_proba`` is calibrated. Otherwise the members'
    probabilities are averaged.

    Parameters
    ----------
    artifact : str, path or MetaArtifact, default="default-tabular"
        The meta-trained learner: a bundled name, a ``.ameta`` path, or an artifact.
        A universal artifact serves tables of any width and class count; a family
        artifact (see :func:`automl_meta.meta_fit`) serves its family's features.
    adapt_steps : int, optional
        Adaptation steps. By default they are chosen per fit by cross-validated early
        stopping: the training rows are split into 3 folds, and among 0 and the step counts
        the artifact was validated on in meta-training, the one with the lowest held-out
        log-loss is used (the folds adapt as one batch, so this costs about one fit's time).
        The candidates are tried in ascending order along one trajectory, and the search stops
        once two in a row fail to improve the held-out loss. With too few rows to split, the
        artifact's meta-validated default is used. Tables of more than 512 rows (4 of the
        artifact's meta-training support sets) are fitted at a cost linear in the rows, in float32:
        the model's closed-form head on all rows, the gradient steps on disjoint mini-batches of
        256 rows, and the step count chosen on a held-out sample instead of folds (see "Large
        tables" in the documentation).
    n_ensemble : int, default=4
        Members adapted at once, each seeing the features in another order; their
        probabilities are averaged. Wide tables and many classes use more (see above).
    random_state : int, RandomState or None
        Fixes the members' feature orders, feature subsets and output code, and the folds.
    verbose : int, default=0
        1 prints a one-line summary of each fit.
    warm_start : bool, default=False
        Refitting continues from the previous fit's weights.
    device : {"cpu", "cuda"} or torch.device, default="cpu"
        Where the adaptation runs (``"cuda:1"`` picks a GPU). The estimators compute in float64,
        which Apple's MPS device lacks, so ``"mps"`` is refused. Results come back as NumPy arrays
        whatever the device.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
        The columns of X, before any encoding.
    feature_names_in_ : ndarray of str
        Defined when X has string column names.
    encoder_ : ColumnTransformer or None
        How X was encoded for the model (categorical columns, missing values), or None when
        X was numeric without NaN. A value missing at predict time, where the fit had none,
        stands for the column's training mean.
    member_features_ : ndarray of shape (n_members, n_model_features)
        The (encoded) columns each member sees, in the order it sees them.
    output_code_ : ndarray of shape (n_members, n_classes) or None
        Each member's group of each class (an index into ``classes_``), when the members'
        evidence is combined with a temperature (more classes than the model's outputs, or
        feature subsets: then each member's groups are the classes); None otherwise.
    temperature_ : float
        The temperature of that combination, fitted on the held-out folds of the first fit
        (1.0 without folds); ``partial_fit`` keeps it.
    class_prior_ : ndarray of shape (n_classes,)
        The (weighted) class frequencies of the first fit's rows.
    prior_weight_ : float
        The weight of ``class_prior_`` in ``predict_proba``, ``(1 - w) * model + w * prior``: chosen
        with the step count by the folds' held-out log-loss, so that on a table with little signal
        the probabilities shrink toward the class frequencies (0.0 when no folds are run: too few
        rows, or ``adapt_steps`` given; and with an output code, whose temperature calibrates instead).
    artifact_ : MetaArtifact
        The artifact used.
    adapt_steps_ : int
        The adaptation steps used (``adapt_steps``, or the cross-validated choice).
    cv_loss_by_adapt_steps_ : dict of int to float
        Held-out loss of each candidate step count tried, when they were cross-validated (the
        search stops early, so the largest candidates may be missing).
    params_ : dict of Tensor
        The adapted weights of each member (leading ensemble axis).

    Examples
    --------
    >>> import automl_meta as am
    >>> from sklearn.datasets import load_iris
    >>> from automl_meta.integrations.sklearn import MetaLearnedClassifier
    >>> tasks = am.tasks.SyntheticTabular("classification", n_features=(2, 8), n_classes=(2, 4))
    >>> learner = am.learners.MetaSGD(am.models.TabularNet(hidden=32, max_features=8, max_outputs=4))
    >>> artifact = am.MetaTrainer(learner, tasks, iterations=20, verbose=0).fit()
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MetaLearnedClassifier(artifact, random_state=0).fit(X[::3], y[::3])
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)

    Digits have 64 features and 10 classes, more than this small model's 8 and 4:

    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MetaLearnedClassifier(artifact, random_state=0).fit(X[:200], y[:200])
    >>> clf.member_features_.shape[1], clf.output_code_.shape[1], clf.predict_proba(X[:2]).shape
    (8, 10, (2, 10))
    """

    _task_type = "classification"

    def partial_fit(  # type: ignore[override]  # classes before sample_weight, as in scikit-learn's classifiers
        self, X: ArrayLike, y: ArrayLike, classes: ArrayLike | None = None, sample_weight: ArrayLike | None = None
    ) -> Self:
        """Continue adapting the fitted weights on ``(X, y)`` for ``adapt_steps`` more steps.

        The first call fits from the artifact, like :meth:`fit`; pass ``classes`` there
        when the first batch may not show every class.
        """
        return self._fit(X, y, sample_weight, reset=False, classes=classes)

    def _validate(
        self, X: ArrayLike, y: ArrayLike, *, reset: bool, classes: ArrayLike | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        X, y = cast("tuple[np.ndarray, np.ndarray]", self._check_X(X, y, reset=reset))
        check_classification_targets(y)
        if reset:
            family_classes = self.artifact_.preprocessing.class_labels()
            if classes is None and family_classes is not None:
                classes = family_classes  # a family artifact: its classes, even those this data lacks
            self.classes_ = np.unique(y if classes is None else classes)
            if len(self.classes_) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes; y has one class "
                    f"only ({self.classes_[0]!r})."
                )
            self.n_outputs_ = len(self.classes_)
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(f"y has classes {unknown.tolist()} not seen in the first fit ({self.classes_.tolist()}).")
        return X, np.searchsorted(self.classes_, y)

    def _n_outputs(self, targets: np.ndarray) -> int:
        return len(self.classes_)

    def _prepare_targets(self, targets: np.ndarray, weight: np.ndarray, *, reset: bool) -> np.ndarray:
        if reset:  # the weight on the prior is chosen with the step count (see _sklearn_prior)
            self.class_prior_, self.prior_weight_ = _class_prior(targets, weight, len(self.classes_)), 0.0
        return targets

    def _set_members(self, n_features: int, rng: np.random.RandomState) -> None:
        # Feature views as for any estimator; with more classes than outputs, an output code too.
        model: Any = self.artifact_.learner.model
        n_views = 1 if self.artifact_.preprocessing.scales_features else self.n_ensemble
        width, n_groups, n_classes = min(n_features, model.in_features), model.out_features, len(self.classes_)
        self.output_code_, self.temperature_ = None, 1.0
        if n_classes <= n_groups:
            self.member_features_ = _feature_views(n_features, width, n_views, rng)
            if width < n_features:  # feature subsets: evidence combined as for an output code (the identity)
                self.output_code_ = np.tile(np.arange(n_classes), (len(self.member_features_), 1))
            return
        code = _output_code(n_classes, n_groups, rng)
        self.member_features_ = _feature_views(n_features, width, max(n_views, len(code)), rng)
        self.output_code_ = _output_code(n_classes, n_groups, rng, len(self.member_features_), code)

    def _member_targets(self, targets: np.ndarray, tasks: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        if self.output_code_ is None:
            return None
        return self.output_code_[tasks][:, targets], np.ones((len(tasks), self._member_outputs()))

    def _member_outputs(self) -> int:
        return len(self.classes_) if self.output_code_ is None else int(self.output_code_.max()) + 1

    def _needs_held_out(self) -> bool:
        return self.output_code_ is not None  # the temperature is fitted on held-out rows

    def _cv_members(self) -> np.ndarray:
        # Decoding needs every member's grouping; otherwise the first member stands for the ensemble.
        return np.arange(len(self.member_features_)) if self.output_code_ is not None else np.zeros(1, np.int64)

    def _held_out_score(
        self, outputs: torch.Tensor, targets: np.ndarray, weight: torch.Tensor
    ) -> tuple[float, dict[str, Any]]:
        # outputs: (folds, cv members, n, outputs), each fold's members scored on all rows.
        if self.output_code_ is None:
            proba = torch.softmax(outputs[:, 0].to(torch.float64), -1)
            loss, prior_weight = _fit_prior_weight(proba, targets, weight, self.class_prior_)
            return loss, {"prior_weight_": prior_weight}
        scores = _class_scores(outputs.numpy(), self.output_code_[self._cv_members()])
        temperature, loss = _fit_temperature(scores, targets, weight.numpy())
        return loss, {"temperature_": temperature}

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), averaged over the ensemble (or decoded)."""
        return self._predict_rows(X, self._proba)

    def _proba(self, outputs: torch.Tensor) -> np.ndarray:
        if self.output_code_ is None:
            proba = torch.softmax(outputs, -1).mean(0).numpy()
            return (1 - self.prior_weight_) * proba + self.prior_weight_ * self.class_prior_
        return _decode(_class_scores(outputs.numpy(), self.output_code_), self.temperature_)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The most probable class of each row."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(1)]

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags


class MetaLearnedRegressor(RegressorMixin, _MetaLearnedEstimator):
    """Regressor adapted in a few learned steps from a meta-trained initialisation.

    Targets are standardised for adaptation and predictions mapped back. One or
    several targets. X is encoded as for :class:`MetaLearnedClassifier`, and tables wider than
    the model's ``in_features`` are served in the same way, by members that see feature subsets
    (their predictions averaged). With more targets than the model's ``out_features``, the
    targets are split into chunks of at most ``out_features``, each chunk adapted by its own
    members (every feature view once per chunk, ``member_targets_``), and the chunks'
    predictions concatenated.

    Parameters
    ----------
    artifact : str, path or MetaArtifact, default="default-tabular"
    adapt_steps : int, optional
    n_ensemble : int, default=4
    random_state : int, RandomState or None
    verbose : int, default=0
    warm_start : bool, default=False
        See :class:`MetaLearnedClassifier`.
    device : {"cpu", "cuda"} or torch.device, default="cpu"
        See :class:`MetaLearnedClassifier`.

    Attributes
    ----------
    n_features_in_ : int
    n_outputs_ : int
    encoder_ : ColumnTransformer or None
        See :class:`MetaLearnedClassifier`.
    member_features_ : ndarray of shape (n_members, n_model_features)
        See :class:`MetaLearnedClassifier`.
    member_targets_ : ndarray of shape (n_members, chunk_width)
        The targets each member predicts (-1 pads a chunk narrower than the others).
    artifact_ : MetaArtifact
    adapt_steps_ : int
    cv_loss_by_adapt_steps_ : dict of int to float
        As for :class:`MetaLearnedClassifier` (held-out squared error in standardised units).
    params_ : dict of Tensor

    Examples
    --------
    >>> import numpy as np, automl_meta as am
    >>> from automl_meta.integrations.sklearn import MetaLearnedRegressor
    >>> tasks = am.tasks.SyntheticTabular("regression", n_features=(2, 8))
    >>> learner = am.learners.MetaSGD(am.models.TabularNet(hidden=32, max_features=8, max_outputs=1))
    >>> artifact = am.MetaTrainer(learner, tasks, iterations=20, verbose=0).fit()
    >>> X = np.random.default_rng(0).normal(size=(40, 3))
    >>> reg = MetaLearnedRegressor(artifact, random_state=0).fit(X, X[:, 0] - 2 * X[:, 1])
    >>> reg.predict(X[:2]).shape
    (2,)
    >>> Y = np.c_[X[:, 0], X[:, 1] + X[:, 2], -X[:, 2]]  # 3 targets: chunks, as the model has 1 output
    >>> MetaLearnedRegressor(artifact, random_state=0).fit(X, Y).predict(X[:2]).shape
    (2, 3)
    """

    _task_type = "regression"

    def _validate(
        self, X: ArrayLike, y: ArrayLike, *, reset: bool, classes: ArrayLike | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        X, y = cast(
            "tuple[np.ndarray, np.ndarray]", self._check_X(X, y, reset=reset, multi_output=True, y_numeric=True)
        )
        y2 = y.reshape(len(y), -1).astype(np.float64)
        if reset:
            self._y_1d = y.ndim == 1
            self.n_outputs_ = y2.shape[1]
        elif y2.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y2.shape[1]} targets; the first fit had {self.n_outputs_}.")
        return X, y2

    def _prepare_targets(self, targets: np.ndarray, weight: np.ndarray, *, reset: bool) -> np.ndarray:
        prep = self.artifact_.preprocessing
        if reset and prep.target_mean is not None:  # a family artifact: scale as in meta-training
            self.y_mean_, self.y_scale_ = np.asarray(prep.target_mean), np.asarray(prep.target_scale)
        elif reset:  # weighted, so that a weight of 2 means the same as a repeated row
            self.y_mean_, self.y_scale_ = _mean_scale(targets, weight)  # overflow-safe: targets of 1e200 work
        standard = _to_standard(targets, self.y_mean_, self.y_scale_)
        if not np.all(np.isfinite(standard)):  # only targets far beyond an earlier fit's scale (partial_fit)
            raise ValueError(
                f"y has values too far from the targets of the first fit (mean {self.y_mean_.tolist()}, "
                f"scale {self.y_scale_.tolist()}) to be represented in float64; refit from scratch."
            )
        return standard

    def _n_outputs(self, targets: np.ndarray) -> int:
        return targets.shape[1]

    def _set_members(self, n_features: int, rng: np.random.RandomState) -> None:
        # Every chunk of targets gets every feature view: each target is predicted by the whole ensemble.
        model: Any = self.artifact_.learner.model
        n_views = 1 if self.artifact_.preprocessing.scales_features else self.n_ensemble
        views = _feature_views(n_features, min(n_features, model.in_features), n_views, rng)
        chunks = _target_chunks(self.n_outputs_, model.out_features)
        self.member_features_ = np.tile(views, (len(chunks), 1))
        self.member_targets_ = np.repeat(chunks, len(views), axis=0)

    def _member_targets(self, targets: np.ndarray, tasks: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        return (
            None
            if self.member_targets_.shape[1] == self.n_outputs_
            else _chunk_targets(targets, self.member_targets_[tasks])
        )

    def _member_outputs(self) -> int:
        return self.member_targets_.shape[1]

    def _cv_members(self) -> np.ndarray:
        # The first member of each chunk of targets (members come chunk by chunk, each with every view).
        n_chunks = len(np.unique(self.member_targets_, axis=0))
        return np.arange(0, len(self.member_targets_), len(self.member_targets_) // n_chunks)

    def _held_out_score(
        self, outputs: torch.Tensor, targets: np.ndarray, weight: torch.Tensor
    ) -> tuple[float, dict[str, Any]]:
        # outputs: (folds, cv members, n, outputs), each fold's members scored on all rows.
        pred = _combine_chunks(outputs, self.member_targets_[self._cv_members()], self.n_outputs_)
        return self._held_out_loss(pred, targets, weight), {}

    @staticmethod
    def _held_out_loss(outputs: torch.Tensor, targets: np.ndarray, weight: torch.Tensor) -> float:
        # outputs: (folds, n, targets), in standardised units (weight picks each fold's held-out rows).
        err = ((outputs - torch.as_tensor(targets)) ** 2).sum(-1)
        return float((err * weight).sum() / weight.sum())

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted targets: shape (n_samples,) for one target, (n_samples, n_targets) for several."""
        pred = self._predict_rows(X, self._targets_of)
        return pred[:, 0] if self._y_1d else pred

    def _targets_of(self, outputs: torch.Tensor) -> np.ndarray:
        combined = _combine_chunks(outputs, self.member_targets_, self.n_outputs_)
        return _from_standard(combined.numpy(), self.y_mean_, self.y_scale_)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
