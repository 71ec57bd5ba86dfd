"""The part of the scikit-learn estimators that classification and regression share (private)."""

from __future__ import annotations

import copy
import sys
import time
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    _check_sample_weight,
    _num_features,
    check_array,
    check_is_fitted,
    check_X_y,
    validate_data,
)

from automl_meta._validation import check_int_at_least, check_optional_int
from automl_meta.artifacts import MetaArtifact, bundled, load
from automl_meta.artifacts._scaling import _standardise_features
from automl_meta.engine import functional_apply, resolve_device
from automl_meta.learners import Learner
from automl_meta.tasks import TaskBatch
from automl_meta.tasks.batch import TaskType

from ._sklearn_cv import _adapt_path, _folds
from ._sklearn_encoding import _categorical_columns, _make_encoder
from ._sklearn_input import _check_serves, _check_tabular_artifact, _feature_scaling

if TYPE_CHECKING:
    from sklearn.utils import Tags
    from typing_extensions import Self


class _MetaLearnedEstimator(BaseEstimator):
    _task_type: TaskType

    if TYPE_CHECKING:  # each estimator below defines these (declared for typing only)

        def _validate(
            self, X: ArrayLike, y: ArrayLike, *, reset: bool, classes: ArrayLike | None = None
        ) -> tuple[np.ndarray, np.ndarray]: ...

        def _n_outputs(self, targets: np.ndarray) -> int: ...

        @staticmethod
        def _held_out_loss(outputs: torch.Tensor, targets: np.ndarray, weight: torch.Tensor) -> float: ...

    def __init__(
        self,
        artifact: str | MetaArtifact = "default-tabular",
        *,
        adapt_steps: int | None = None,
        n_ensemble: int = 4,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        warm_start: bool = False,
        device: str | torch.device = "cpu",
    ) -> None:
        self.artifact = artifact
        self.adapt_steps = adapt_steps
        self.n_ensemble = n_ensemble
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device

    # -- validation ----------------------------------------------------------------------------------
    def _check_params(self) -> None:
        check_optional_int(self.adapt_steps, "adapt_steps", 0)
        check_int_at_least(self.n_ensemble, "n_ensemble", 1)
        resolve_device(self.device, torch.float64)  # a GPU this machine lacks is refused before any work

    def _resolve_artifact(self) -> MetaArtifact:
        # A copy: running the model must not touch the object the user passed as a parameter.
        if isinstance(self.artifact, MetaArtifact):
            artifact = copy.deepcopy(self.artifact)
        elif isinstance(self.artifact, str) and f"{self.artifact}-{self._task_type}" in bundled():
            artifact = load(f"{self.artifact}-{self._task_type}")  # "default-tabular" has one per task type
        else:
            artifact = load(self.artifact)
        _check_tabular_artifact(artifact, self.artifact, type(self).__name__, self._task_type)
        # float64 throughout: fits are small, and results then do not depend on row order or repetition.
        artifact.learner.to(device=resolve_device(self.device, torch.float64), dtype=torch.float64)
        return artifact

    def _check_X(self, X: ArrayLike, y: Any = "no_validation", *, reset: bool, **y_checks: bool) -> Any:
        """X as the model's float64 features, and y checked too when given (then returns both).

        Categorical columns and missing values go through ``encoder_`` (see ``_sklearn_encoding``);
        ``n_features_in_`` and ``feature_names_in_`` describe X's own columns either way.
        """
        no_y = isinstance(y, str) and y == "no_validation"
        categorical = _categorical_columns(X) if reset else []
        if reset:
            self.encoder_ = _make_encoder(_num_features(X), categorical) if categorical else None
        if self.encoder_ is None or (reset and not categorical):
            # NaN is let through here: at fit it calls for the encoder, after it means the training mean.
            checked = validate_data(
                self, X, y, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan", **({} if no_y else y_checks)
            )
            Xa = checked if no_y else checked[0]
            if not (reset and np.isnan(Xa).any()):
                return checked
            self.encoder_ = _make_encoder(Xa.shape[1], [])
        validate_data(self, X, y, reset=reset, skip_check_array=True)  # the user's columns: names and count
        Z = self.encoder_.fit_transform(X) if reset else self.encoder_.transform(X)
        if no_y:
            return check_array(Z, dtype=np.float64, estimator=self)
        return check_X_y(Z, y, dtype=np.float64, estimator=self, **y_checks)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # imputed, with a missing-value indicator (see _sklearn_encoding)
        return tags

    # -- fitting -------------------------------------------------------------------------------------
    def _standardise(self, X: np.ndarray) -> np.ndarray:
        z = _standardise_features(X, self.x_mean_, self.x_scale_, self.artifact_.preprocessing.feature_clip)
        # NaN only where the fit had none (no encoder): the missing value takes the column's mean.
        return np.where(np.isnan(z), 0.0, z) if self.encoder_ is None and np.isnan(z).any() else z

    def _members(self, X: np.ndarray, permutations: np.ndarray | None = None) -> np.ndarray:
        """(n_members, n_samples, n_features): the standardised rows, features permuted per member."""
        perms = self.permutations_ if permutations is None else permutations
        return self._standardise(X)[:, perms].transpose(1, 0, 2)

    def _batch(
        self, X: np.ndarray, targets: np.ndarray, weights: np.ndarray, permutations: np.ndarray | None = None
    ) -> TaskBatch:
        """One task per row of ``weights`` (n_tasks, n_samples) and of ``permutations`` (feature orders)."""
        device = self._device
        members = torch.as_tensor(self._members(X, permutations), dtype=self._dtype, device=device)
        e, n = members.shape[:2]
        if self._task_type == "classification":
            y = torch.as_tensor(targets, dtype=torch.int64, device=device).expand(e, n)
            outputs = len(self.classes_)
        else:
            y = torch.as_tensor(targets, dtype=self._dtype, device=device).expand(e, n, targets.shape[1])
            outputs = targets.shape[1]
        # Weights as counts (as in scikit-learn): a weight of 2 is a repeated row.
        mask = torch.as_tensor(weights, dtype=self._dtype, device=device).expand(e, n)
        ones = lambda *shape: torch.ones(*shape, dtype=self._dtype, device=device)  # noqa: E731 - short local helper
        return TaskBatch(
            x_support=members,
            y_support=y,
            x_query=members[:, :1],
            y_query=y[:, :1],
            support_mask=mask,
            query_mask=ones(e, 1),
            feature_mask=ones(e, members.shape[2]),
            class_mask=ones(e, outputs),
            task_type=self._task_type,
        )

    @property
    def _learner(self) -> Learner:
        # cast: _resolve_artifact (_check_tabular_artifact) let through only a learner of this task type.
        return cast(Learner, self.artifact_.learner)

    @property
    def _dtype(self) -> torch.dtype:
        return next(iter(self.artifact_.learner.parameters())).dtype

    @property
    def _device(self) -> torch.device:
        return next(iter(self.artifact_.learner.parameters())).device

    def _steps(self) -> int:
        if self.adapt_steps is not None:
            return int(self.adapt_steps)
        return int(self.adapt_steps_)

    def _learned_default(self) -> int:
        return self.artifact_.adapt_steps

    def _fit_selecting_steps(
        self, X: np.ndarray, targets: np.ndarray, weight: np.ndarray, rng: np.random.RandomState
    ) -> bool:
        """Cross-validated early stopping: fit with the candidate step count of lowest held-out loss.

        The candidates are 0 and the step counts the artifact was validated on in meta-training. The
        first member (features in their own order) is adapted on each fold's training rows, in the
        same batch and along the same trajectory as the ensemble's fit on all rows, so choosing costs
        little more than fitting. Returns False, fitting nothing, when there are too few rows to split.
        """
        default = self._learned_default()
        candidates = sorted({0, default, *self.artifact_.validated_adapt_steps})
        folds = _folds(X, targets, weight, rng, self._task_type)
        if folds is None or len(candidates) < 2:
            return False
        k, perms = len(folds), self.permutations_
        held_out = np.stack([np.isin(np.arange(len(X)), test) for test in folds])
        weights = np.concatenate([weight * ~held_out, np.repeat(weight[None], len(perms), 0)])
        task_perms = np.concatenate([np.repeat(perms[:1], k, 0), perms])
        path = _adapt_path(self._learner, self._batch(X, targets, weights, task_perms), candidates)
        apply = torch.vmap(functional_apply(self._learner.model))
        x_folds = torch.as_tensor(self._members(X, task_perms[:k]), dtype=self._dtype, device=self._device)
        eval_weight = torch.as_tensor(weight * held_out, dtype=torch.float64)
        losses = {}
        with torch.no_grad():
            for steps, params in path.items():
                out = apply({n: t[:k] for n, t in params.items()}, x_folds)[..., : self.n_outputs_]
                losses[steps] = self._held_out_loss(out.to("cpu", torch.float64), targets, eval_weight)
        self.cv_loss_by_adapt_steps_ = losses
        self.adapt_steps_ = min(losses, key=lambda s: (losses[s], s))
        self.params_ = {n: t[k:] for n, t in path[self.adapt_steps_].items()}
        return True

    def _fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        sample_weight: ArrayLike | None,
        *,
        reset: bool,
        classes: ArrayLike | None = None,
    ) -> Self:
        self._check_params()
        start = time.perf_counter()
        continuing = not reset and hasattr(self, "params_")
        if not continuing:
            self.artifact_ = self._resolve_artifact()
        X, targets = self._validate(X, y, reset=not continuing, classes=classes)
        # Negative or all-zero weights are refused with scikit-learn's messages.
        weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if not continuing:
            rng = check_random_state(self.random_state)
            _check_serves(
                self.artifact_,
                self._task_type,
                X.shape[1],
                self._n_outputs(targets),
                getattr(self, "feature_names_in_", None),
            )
            self.x_mean_, self.x_scale_, self.permutations_ = _feature_scaling(
                self.artifact_.preprocessing, X, weight, rng, self.n_ensemble
            )
        targets = self._prepare_targets(targets, weight, reset=not continuing)
        if not continuing:
            self.__dict__.pop("cv_loss_by_adapt_steps_", None)
            self.adapt_steps_ = self._learned_default() if self.adapt_steps is None else int(self.adapt_steps)
        selected = not continuing and self.adapt_steps is None and self._fit_selecting_steps(X, targets, weight, rng)
        if not selected:
            batch = self._batch(X, targets, weight[None])
            self.params_ = self._learner.adapt_batch(batch, self._steps(), start=self.params_ if continuing else None)
        if self.verbose:
            print(
                f"{type(self).__name__}: adapted {len(self.permutations_)} member(s) for {self._steps()} step(s) "
                f"on {X.shape[0]} rows in "
                f"{time.perf_counter() - start:.3f} s",
                file=sys.stderr,
            )
        return self

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> Self:
        """Adapt the artifact's learned initialisation to ``(X, y)`` with its learned step sizes.

        With ``warm_start=True`` and an earlier fit, adaptation continues from the fitted weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, reset=not self.warm_start)

    def partial_fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> Self:
        """Continue adapting the fitted weights on ``(X, y)`` for ``adapt_steps`` more steps.

        The first call fits from the artifact, like :meth:`fit`.
        """
        return self._fit(X, y, sample_weight, reset=False)

    def _prepare_targets(self, targets: np.ndarray, weight: np.ndarray, *, reset: bool) -> np.ndarray:
        return targets

    @torch.no_grad()
    def _outputs(self, X: ArrayLike) -> torch.Tensor:
        check_is_fitted(self, "params_")
        X = cast(np.ndarray, self._check_X(X, reset=False))
        members = torch.as_tensor(self._members(X), dtype=self._dtype, device=self._device)
        out = torch.vmap(functional_apply(self._learner.model))(self.params_, members)
        return out[..., : self.n_outputs_].cpu()
