"""What every gradient-based meta-learner shares: meta-parameters, batched adaptation, configs."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn

from .. import models
from .._validation import check_nonnegative_int, check_positive_float, check_positive_int
from ..engine import Params, batched_adapt, batched_query_losses, functional_apply
from ..exceptions import TaskError
from ..tasks import Task, TaskBatch
from ..tasks.batch import TASK_TYPES, TaskType

if TYPE_CHECKING:  # an artifact's record; learners come before artifacts in the import order
    from ..artifacts.preprocessing import Preprocessing


class _Backbone(Protocol):
    """What learners use of a model beyond ``nn.Module`` (see :mod:`automl_meta.models`); typing only."""

    in_features: int
    out_features: int

    def build(self, in_features: int, out_features: int, generator: torch.Generator | None = None) -> nn.Module: ...

    def get_config(self) -> dict[str, Any]: ...


def _backbone(model: nn.Module) -> _Backbone:
    # A cast, no check: the models in automl_meta.models provide these (a set-up model has int widths).
    return cast(_Backbone, model)


def _key(name: str) -> str:
    # nn.ParameterDict keys cannot hold dots; parameter names do.
    return name.replace(".", "__")


class Learner(nn.Module):
    """Base class of the meta-learners.

    A learner owns a backbone ``model`` and its meta-parameters (listed in
    :attr:`meta_learns`): the initialisation (the model's parameters) and,
    for some learners, learned inner-loop step sizes. Adapting to a task runs
    ``inner_steps`` gradient steps from the initialisation on the task's
    support set, for a whole batch of tasks at once.

    Parameters
    ----------
    model : nn.Module
        The backbone, e.g. :class:`automl_meta.models.MLP`. Its input and
        output widths may be left for :meth:`setup` to fill in.
    inner_steps : int
        Gradient steps on the support set during meta-training (and by default when adapting).
    inner_lr : float
        Inner-loop step size (the starting value, where rates are learned).
    """

    name: ClassVar[str] = "learner"
    meta_learns: ClassVar[tuple[str, ...]] = ("init",)
    first_order: bool = False

    def __init__(self, model: nn.Module, *, inner_steps: int = 1, inner_lr: float = 0.01) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module such as automl_meta.models.MLP, got {type(model)}.")
        self.model = model
        self.inner_steps = check_positive_int(inner_steps, "inner_steps")
        self.inner_lr = check_positive_float(inner_lr, "inner_lr")
        self.task_type: str | None = None

    # -- set-up -------------------------------------------------------------------------------------
    @property
    def is_setup(self) -> bool:
        return self.task_type is not None and getattr(self.model, "is_built", True)

    def setup(
        self, task_type: str, in_features: int, out_features: int, generator: torch.Generator | None = None
    ) -> Learner:
        """Fit the backbone to a task family's widths and create the meta-parameters.

        Called by :class:`~automl_meta.MetaTrainer`; a backbone already built for
        other widths is an error rather than a silent rebuild.
        """
        if task_type not in TASK_TYPES:
            raise ValueError(f"task_type must be one of {TASK_TYPES}, got {task_type!r}.")
        if self._flexible:
            _backbone(self.model).build(in_features, out_features)  # checks the family fits within the model's maxima
        elif getattr(self.model, "is_built", True):
            have = (getattr(self.model, "in_features", in_features), getattr(self.model, "out_features", out_features))
            if have != (in_features, out_features):
                raise ValueError(
                    f"The model was built for {have[0]} inputs and {have[1]} outputs, but the tasks "
                    f"have {in_features} and {out_features}; leave in/out_features unset to fit them."
                )
        else:
            _backbone(self.model).build(in_features, out_features, generator=generator)
        self.task_type = task_type
        self._setup_meta()
        return self

    @property
    def _flexible(self) -> bool:
        # A model whose in/out_features are maxima (TabularNet) rather than exact widths.
        return getattr(self.model, "flexible_widths", False)

    def _setup_meta(self) -> None:
        """Create learned meta-parameters beyond the initialisation (none by default)."""

    def _require_setup(self) -> None:
        if not self.is_setup:
            raise RuntimeError(
                f"{type(self).__name__} is not set up: meta-train it with MetaTrainer, "
                "or call learner.setup(task_type, in_features, out_features)."
            )

    # -- meta-parameters ----------------------------------------------------------------------------
    def init_params(self) -> Params:
        """The meta-learned initialisation, by parameter name."""
        return dict(self.model.named_parameters())

    def adapted_names(self) -> list[str]:
        """Parameters the inner loop adapts (all of them, unless a learner says otherwise)."""
        return list(self.init_params())

    def inner_rates(self) -> Params:
        """Step size for each adapted parameter (a fixed scalar unless learned)."""
        ref = next(iter(self.init_params().values()))
        lr = torch.tensor(self.inner_lr, dtype=ref.dtype, device=ref.device)
        return {n: lr for n in self.adapted_names()}

    # -- adaptation and meta-losses -------------------------------------------------------------------
    def _engine_kwargs(self, steps: int | None) -> dict[str, Any]:
        return {
            "steps": self.inner_steps if steps is None else check_nonnegative_int(steps, "steps"),
            "task_type": self.task_type,
            "names": self.adapted_names(),
            "first_order": self.first_order,
            "safeguard_after": self.inner_steps,
            # Models may start each task from a point fitted to its support set (see TabularNet).
            "initialize": getattr(self.model, "initialize_from_support", None),
        }

    def query_losses(self, batch: TaskBatch, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """Per-task query loss and metric after adapting on the support sets (differentiable)."""
        self._require_setup()
        self._check_batch(batch)
        return batched_query_losses(
            functional_apply(self.model),
            self.init_params(),
            self.inner_rates(),
            batch.support(),
            batch.query(),
            **self._engine_kwargs(steps),
        )

    def meta_backward(self, batch: TaskBatch) -> dict[str, float]:
        """Accumulate meta-gradients of one meta-batch into ``.grad``; return its mean loss and metric."""
        losses, metric = self.query_losses(batch)
        loss = losses.mean()
        if torch.isfinite(loss):
            loss.backward()
        return {"loss": float(loss.detach()), "metric": float(metric.mean())}

    @torch.no_grad()
    def evaluate(self, batch: TaskBatch, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """Per-task query loss and metric after ``steps`` adaptation steps (no meta-gradient)."""
        return self.query_losses(batch, steps)

    @torch.no_grad()
    def adapt_batch(self, batch: TaskBatch, steps: int | None = None, start: Params | None = None) -> Params:
        """Fast weights of every task in ``batch`` (leading task axis).

        ``start`` continues from earlier fast weights (with a task axis) instead of the
        meta-learned initialisation; every such step is safeguarded, as steps beyond
        meta-training are.
        """
        self._require_setup()
        self._check_batch(batch)
        kwargs = self._engine_kwargs(steps)
        if start is not None:
            kwargs.update(initialize=None, safeguard_after=0)
        return batched_adapt(
            functional_apply(self.model),
            self.init_params() if start is None else start,
            self.inner_rates(),
            batch.support(),
            params_batched=start is not None,
            **kwargs,
        )

    def adapt(
        self, X: ArrayLike, y: ArrayLike, steps: int | None = None, *, preprocessing: Preprocessing | None = None
    ) -> AdaptedModel:
        """Adapt to one new task's data and return a predictor for it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            At most as many features as the model takes (fewer are zero-padded).
        y : array-like
            Targets: integer labels ``0..n_classes-1`` for classification (or the labels of
            ``preprocessing.classes``).
        steps : int, optional
            Adaptation steps (default: ``inner_steps``; 0 keeps the meta-learned initialisation).
            Steps beyond the ``inner_steps`` of meta-training are safeguarded: a step that would
            raise the support loss is shrunk until it does not (or skipped), so long adaptation
            with learned rates cannot diverge.
        preprocessing : Preprocessing, optional
            How an artifact prepares data (its family's scaling and classes); the predictor applies
            it too. Given by :meth:`automl_meta.MetaArtifact.adapt`.
        """
        self._require_setup()
        kind = self.task_type
        assert kind is not None  # _require_setup: a set-up learner has its task type
        n_classes = None
        if preprocessing is not None:
            X = preprocessing.transform_features(X)
            if kind == "classification":
                y = preprocessing.encode_labels(y)
                n_classes = None if preprocessing.classes is None else len(preprocessing.classes)
            else:
                y = preprocessing.transform_targets(y)
        # cast: Task.__post_init__ turns array-likes into arrays; setup() checked kind is one of TASK_TYPES.
        xs, ys = cast(np.ndarray, X), cast(np.ndarray, y)
        task = Task(xs, ys, xs, ys, task_type=cast(TaskType, kind), n_classes=n_classes)
        n_in, n_out = _backbone(self.model).in_features, _backbone(self.model).out_features
        if task.n_features > n_in:
            raise TaskError(f"X has {task.n_features} features but this learner's model takes at most {n_in}.")
        if task.n_outputs > n_out:
            what = "classes" if kind == "classification" else "targets"
            raise TaskError(f"y has {task.n_outputs} {what} but this learner's model has {n_out} outputs.")
        ref = next(iter(self.init_params().values()))  # the data goes where the learner is, in its dtype
        batch = _one_task_batch(
            task, None if self._flexible else n_in, None if self._flexible else n_out, ref.dtype
        ).to(device=ref.device)
        fast = {k: v[0] for k, v in self.adapt_batch(batch, steps).items()}
        return AdaptedModel(self.model, fast, kind, task.n_features, task.n_outputs, preprocessing=preprocessing)

    def _check_batch(self, batch: TaskBatch) -> None:
        if batch.task_type != self.task_type:
            raise TaskError(f"This learner was set up for {self.task_type} tasks, got a {batch.task_type} batch.")
        n_in, n_out = getattr(self.model, "in_features", None), getattr(self.model, "out_features", None)
        bad_in = n_in is not None and (batch.n_features > n_in if self._flexible else batch.n_features != n_in)
        bad_out = n_out is not None and (batch.n_outputs > n_out if self._flexible else batch.n_outputs != n_out)
        if bad_in:
            raise TaskError(f"The batch has {batch.n_features} features but the model takes {n_in}.")
        if bad_out:
            raise TaskError(f"The batch has {batch.n_outputs} outputs but the model has {n_out}.")

    # -- configuration ------------------------------------------------------------------------------
    def _config_kwargs(self) -> dict[str, Any]:
        return {"inner_steps": self.inner_steps, "inner_lr": self.inner_lr}

    def get_config(self) -> dict[str, Any]:
        """Everything :meth:`from_config` needs to rebuild this learner (JSON-serialisable)."""
        return {
            "name": self.name,
            "model": _backbone(self.model).get_config(),
            "task_type": self.task_type,
            **self._config_kwargs(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Learner:
        """Rebuild a set-up learner from :meth:`get_config` (parameters still at their initial values)."""
        config = dict(config)
        config.pop("name", None)
        model = models.from_config(config.pop("model"))
        task_type = config.pop("task_type")
        learner = cls(model, **config)
        return learner.setup(task_type, _backbone(model).in_features, _backbone(model).out_features)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._config_kwargs().items())


class LearnedRatesMixin:
    """Meta-learned step sizes, one per parameter entry (``"parameter"``) or per tensor (``"tensor"``)."""

    if TYPE_CHECKING:  # given by the Learner this mixin is combined with (declared for typing only)
        inner_lr: float

        def init_params(self) -> Params: ...

        def adapted_names(self) -> list[str]: ...

    def _init_rates(self, granularity: str) -> None:
        params = self.init_params()
        shape = (lambda p: p.shape) if granularity == "parameter" else (lambda p: ())
        self.rates = nn.ParameterDict(
            {
                _key(n): nn.Parameter(
                    torch.full(shape(params[n]), self.inner_lr, dtype=params[n].dtype, device=params[n].device)
                )
                for n in self.adapted_names()
            }
        )

    def inner_rates(self) -> Params:
        return {n: self.rates[_key(n)] for n in self.adapted_names()}


def _one_task_batch(task: Task, n_features: int | None, n_outputs: int | None, dtype: torch.dtype) -> TaskBatch:
    """``task`` as a batch of one in ``dtype``; the data is cast once (``from_tasks`` stages it through float32)."""
    batch = TaskBatch.from_tasks([task], n_features=n_features, n_outputs=n_outputs).to(dtype)
    x = torch.zeros(batch.x_support.shape, dtype=dtype)
    x[0, :, : task.n_features] = torch.as_tensor(task.x_support, dtype=dtype)
    if task.task_type == "classification":
        return replace(batch, x_support=x, x_query=x)
    y = torch.zeros(batch.y_support.shape, dtype=dtype)
    y[0, :, : task.n_outputs] = torch.as_tensor(task.y_support, dtype=dtype)
    return replace(batch, x_support=x, x_query=x, y_support=y, y_query=y)


class AdaptedModel:
    """A learner's backbone adapted to one task: predicts new rows of that task.

    Returned by :meth:`Learner.adapt` and :meth:`automl_meta.MetaArtifact.adapt`; with an artifact's
    ``preprocessing`` it prepares new rows as the artifact says (its family's feature scaling), maps
    regression predictions back to the targets' units and predicts the family's class labels.
    """

    def __init__(
        self,
        model: nn.Module,
        params: Params,
        task_type: str,
        n_features: int,
        n_outputs: int,
        preprocessing: Preprocessing | None = None,
    ) -> None:
        self.model, self.params, self.task_type = model, params, task_type
        self.n_features, self.n_outputs = n_features, n_outputs
        self.preprocessing = preprocessing

    @torch.no_grad()
    def _forward(self, X: ArrayLike) -> Tensor:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise TaskError(f"X must have shape (n_samples, {self.n_features}), got {X.shape}.")
        if not np.all(np.isfinite(X)):
            raise TaskError("X contains NaN or infinite values.")
        if self.preprocessing is not None:
            X = self.preprocessing.transform_features(X)
        n_in = X.shape[1] if getattr(self.model, "flexible_widths", False) else _backbone(self.model).in_features
        Xp = np.zeros((len(X), n_in))
        Xp[:, : X.shape[1]] = X
        ref = next(iter(self.params.values()))
        out = functional_apply(self.model)(self.params, torch.as_tensor(Xp, dtype=ref.dtype, device=ref.device))
        return out[:, : self.n_outputs].cpu()

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted targets (regression; 1-D for one target) or class labels (classification)."""
        labels = None if self.preprocessing is None else self.preprocessing.class_labels()
        if labels is not None:  # the most probable label, as the estimators pick it
            return labels[self.predict_proba(X).argmax(1)]
        out = self._forward(X)
        if self.task_type == "classification":
            return out.argmax(-1).numpy()
        values = out.numpy()
        if self.preprocessing is not None:
            values = self.preprocessing.inverse_transform_targets(values)
        return values[:, 0] if self.n_outputs == 1 else values

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes) (classification only)."""
        if self.task_type != "classification":
            raise AttributeError("predict_proba is only available for classification tasks.")
        return torch.softmax(self._forward(X), -1).numpy()
