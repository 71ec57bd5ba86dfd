"""The part of the scikit-learn estimators that classification and regression share (private)."""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
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
from automl_meta.engine import Params, functional_apply, resolve_device
from automl_meta.learners import Learner
from automl_meta.tasks import TaskBatch
from automl_meta.tasks.batch import TaskType

from ._sklearn_cv import Scores, _adapt_path, _folds, _select_steps
from ._sklearn_encoding import _categorical_columns, _make_encoder
from ._sklearn_input import _check_serves, _check_tabular_artifact, _feature_scaling
from ._sklearn_rows import _fit_on_many_rows, _output_chunks, _row_threshold, _subsample

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

        def _set_members(self, n_features: int, rng: np.random.RandomState) -> None: ...

        def _member_targets(self, targets: np.ndarray, tasks: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None: ...

        def _member_outputs(self) -> int: ...

        def _cv_members(self) -> np.ndarray: ...

        def _held_out_score(
            self, outputs: torch.Tensor, targets: np.ndarray, weight: torch.Tensor
        ) -> tuple[float, dict[str, Any]]: ...

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
            try:
                checked = validate_data(
                    self,
                    X,
                    y,
                    reset=reset,
                    dtype=np.float64,
                    ensure_all_finite="allow-nan",
                    **({} if no_y else y_checks),
                )
            except ValueError as error:
                if "could not convert string" not in str(error):
                    raise
                raise ValueError(
                    f"{error}: X holds text. Pass X as a pandas DataFrame whose text columns have dtype object, "
                    "string or category; they are then one-hot encoded."
                ) from error
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

    def _members(self, X: np.ndarray, tasks: np.ndarray | None = None) -> np.ndarray:
        """(n_tasks, n_samples, width): the standardised rows as each task's member sees them.

        ``tasks`` are member indices (default: every member once); see ``_sklearn_members``.
        """
        views = self.member_features_ if tasks is None else self.member_features_[tasks]
        return self._standardise(X)[:, views].transpose(1, 0, 2)

    def _batch(
        self, X: np.ndarray, targets: np.ndarray, weights: np.ndarray, tasks: np.ndarray | None = None
    ) -> TaskBatch:
        """One task per row of ``weights`` (n_tasks, n_samples) and of ``tasks`` (member indices)."""
        device = self._device
        members = torch.as_tensor(self._members(X, tasks), dtype=self._dtype, device=device)
        e, n = members.shape[:2]
        own = self._member_targets(targets, np.arange(e) if tasks is None else tasks)
        y_type = torch.int64 if self._task_type == "classification" else self._dtype
        if own is None:  # every member fits the same targets
            y = torch.as_tensor(targets, dtype=y_type, device=device).expand(e, *targets.shape)
            class_mask = torch.ones(e, self._member_outputs(), dtype=self._dtype, device=device)
        else:
            y = torch.as_tensor(own[0], dtype=y_type, device=device)
            class_mask = torch.as_tensor(own[1], dtype=self._dtype, device=device)
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
            class_mask=class_mask,
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
        self, X: np.ndarray, targets: np.ndarray, weight: np.ndarray, rng: np.random.RandomState, candidates: list[int]
    ) -> bool:
        """Cross-validated early stopping: fit with the candidate step count of lowest held-out loss.

        The candidates are 0 and the step counts the artifact was validated on in meta-training (or only
        ``adapt_steps`` when it is given and settings fitted on held-out rows need the folds). The
        members that ``_cv_members`` names (the first, features in their own order, unless targets differ
        per member) are adapted on each fold's training rows, in the same batch and along the same
        trajectory as the ensemble's fit on all rows, so choosing costs little more than fitting. The
        candidates are taken in ascending order and the search stops once the held-out loss has not
        improved for ``_PATIENCE`` candidates in a row (see ``_stalled``): a small table whose loss rises
        from the first steps is not carried through 30 steps. Settings fitted on the held-out rows with
        the chosen steps (``_held_out_score``) are set too. Returns False, fitting nothing, when there are
        too few rows to split.
        """
        folds = _folds(X, targets, weight, rng, self._task_type)
        if folds is None:
            return False
        k, cv, n_members = len(folds), self._cv_members(), len(self.member_features_)
        held_out = np.stack([np.isin(np.arange(len(X)), test) for test in folds])
        weights = np.concatenate([np.repeat(weight * ~held_out, len(cv), 0), np.repeat(weight[None], n_members, 0)])
        tasks = np.concatenate([np.tile(cv, k), np.arange(n_members)])
        apply = torch.vmap(functional_apply(self._learner.model))
        n_cv = k * len(cv)
        x_folds = torch.as_tensor(self._members(X, tasks[:n_cv]), dtype=self._dtype, device=self._device)
        eval_weight = torch.as_tensor(weight * held_out, dtype=torch.float64)

        @torch.no_grad()
        def score(params: Params) -> tuple[float, dict[str, Any]]:
            out = apply({n: t[:n_cv] for n, t in params.items()}, x_folds)[..., : self._member_outputs()]
            out = out.to("cpu", torch.float64).reshape(k, len(cv), *out.shape[1:])
            return self._held_out_score(out, targets, eval_weight)

        with torch.no_grad():
            path = _adapt_path(self._learner, self._batch(X, targets, weights, tasks), candidates)
            best, kept, scores = _select_steps(path, score)
        self._keep_choice(scores, best, several=len(candidates) > 1)
        self.params_ = {n: t[n_cv:] for n, t in kept.items()}
        return True

    def _keep_choice(self, scores: Scores, best: int, *, several: bool) -> None:
        """Record the chosen step count (with ``several`` candidates) and set the settings fitted with it."""
        if several:
            self.cv_loss_by_adapt_steps_ = {steps: loss for steps, (loss, _) in scores.items()}
            self.adapt_steps_ = best
        self.__dict__.update(scores[best][1])

    def _step_candidates(self) -> list[int]:
        """Step counts to cross-validate; with ``adapt_steps`` given, only it, when held-out settings need the folds."""
        if self.adapt_steps is None:
            return sorted({0, self._learned_default(), *self.artifact_.validated_adapt_steps})
        return [int(self.adapt_steps)] if self._needs_held_out() else []

    def _needs_held_out(self) -> bool:
        return False

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
        rng = check_random_state(self.random_state)
        if not continuing:
            names = getattr(self, "feature_names_in_", None)
            _check_serves(self.artifact_, self._task_type, X.shape[1], self._n_outputs(targets), names)
            self.x_mean_, self.x_scale_ = _feature_scaling(self.artifact_.preprocessing, X, weight)
            self._set_members(X.shape[1], rng)
        targets = self._prepare_targets(targets, weight, reset=not continuing)
        if not continuing:
            self.__dict__.pop("cv_loss_by_adapt_steps_", None)
            self.adapt_steps_ = self._learned_default() if self.adapt_steps is None else int(self.adapt_steps)
            candidates = self._step_candidates()
        many_rows = bool(np.count_nonzero(weight) > _row_threshold(self.artifact_))
        if many_rows and not continuing:  # gradient steps on a subsample, the head on all rows
            _fit_on_many_rows(self, X, targets, weight, rng, candidates)
        elif not (
            not continuing
            and (len(candidates) > 1 or self._needs_held_out())
            and self._fit_selecting_steps(X, targets, weight, rng, candidates)
        ):
            self._adapt(X, targets, weight, rng, continuing=continuing, many_rows=many_rows)
        if self.verbose:
            print(
                f"{type(self).__name__}: adapted {len(self.member_features_)} member(s) for {self._steps()} step(s) "
                f"on {len(X)} rows{' (gradient steps on a subsample)' if many_rows else ''} "
                f"in {time.perf_counter() - start:.3f} s",
                file=sys.stderr,
            )
        return self

    def _adapt(
        self,
        X: np.ndarray,
        targets: np.ndarray,
        weight: np.ndarray,
        rng: np.random.RandomState,
        *,
        continuing: bool,
        many_rows: bool,
    ) -> None:
        """``params_`` after ``_steps()`` steps from the artifact, or from the fitted weights when continuing."""
        if many_rows:  # continuing on a large table: the steps on a subsample (see _sklearn_rows)
            by_class = self._task_type == "classification"
            rows, weight = _subsample(targets, weight, _row_threshold(self.artifact_), rng, by_class)
            X, targets = X[rows], targets[rows]
        batch = self._batch(X, targets, weight[None])
        self.params_ = self._learner.adapt_batch(batch, self._steps(), start=self.params_ if continuing else None)

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> Self:
        """Adapt the artifact's learned initialisation to ``(X, y)`` with its learned step sizes.

        With ``warm_start=True`` and an earlier fit, adaptation continues from the fitted weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            May hold NaN and, in a pandas DataFrame, categorical columns (encoded in ``encoder_``).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional
            Counts: a weight of 2 is a repeated row.

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

    def _outputs(self, X: ArrayLike) -> torch.Tensor:
        """Every member's outputs (members, rows, outputs) on ``X``."""
        check_is_fitted(self, "params_")
        return torch.cat(list(_output_chunks(self, cast(np.ndarray, self._check_X(X, reset=False)))), 1)

    def _predict_rows(self, X: ArrayLike, finish: Callable[[torch.Tensor], np.ndarray]) -> np.ndarray:
        """``finish(outputs)`` of every chunk of rows of ``X``, concatenated: memory bounded whatever the rows."""
        check_is_fitted(self, "params_")
        X = cast(np.ndarray, self._check_X(X, reset=False))
        return np.concatenate([finish(outputs.to(torch.float64)) for outputs in _output_chunks(self, X)])
