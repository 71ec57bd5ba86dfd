"""Tables with many rows: gradient steps on mini-batches, the closed-form head on all rows (private).

The learner was meta-trained on support sets of at most ``_support_size`` rows (128 for the bundled
artifacts), and its full-batch adaptation costs time and memory in proportion to the rows, times the
members, the folds and the candidate step counts. Above ``_row_threshold`` rows (``_ROWS_PER_SUPPORT``
support sets: 512 rows) a fit therefore goes another way, whose cost is linear in the rows with a
small constant:

1. ``_split`` draws a validation sample (at most ``_VALIDATION_SUPPORTS`` support sets of draws: 2,048,
   and at most a fifth of the rows) and sets the other rows aside for training. Draws are with
   replacement, in proportion to the sample weights (a weight of 2 is a repeated row: a draw is one
   from the table with its rows repeated), and stratified by class for classification; a row drawn
   several times gets that count as its weight.
2. Classification: ``_head_on_all_rows`` fits the TabularNet's closed-form ridge head (what
   ``initialize_from_support`` fits on a support set) on *all* rows, accumulating the normal equations
   chunk by chunk, so that every row informs the model at a cost linear in the rows and with bounded
   memory. From that head, the members take the learner's gradient steps on mini-batches of the
   training rows (``_mini_batches``: disjoint, ``_BATCH_SUPPORTS`` support sets each, every class in
   proportion), the next mini-batch at each step, along one trajectory through the candidate step
   counts.
3. Regression: the members adapt, as in meta-training, on one support set of ``_STEP_SUPPORTS``
   support sets of training rows (2,048, every step on the same rows, the head fitted to them), and
   the head is then refitted in closed form on all rows for the adapted body. Squared error's head
   has that closed-form optimum: started from the all-rows head, a mini-batch's head gradient is only
   sampling noise, which the meta-learned rates amplify (the held-out loss rose from the first step).

The step count, and the output code's temperature, are chosen on the validation sample instead of
by cross-validation, and the search stops early as cross-validation's does.
The model runs in float32 on this path (in float64 below it): half the time, with rounding far
below the noise of a mini-batch. The draws come from the estimator's ``random_state``. Below the
threshold nothing changes. ``_output_chunks`` runs the model on chunks of rows, so predicting needs
bounded memory too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.func import functional_call

from automl_meta.artifacts import MetaArtifact
from automl_meta.engine import Params, functional_apply
from automl_meta.learners import Learner
from automl_meta.models import TabularNet
from automl_meta.tasks import TaskBatch

from ._sklearn_cv import _adapt_path, _select_steps, _steps_from

if TYPE_CHECKING:
    from ._sklearn_base import _MetaLearnedEstimator

_ROWS_PER_SUPPORT = 4  # the threshold, in meta-trained support sets: 512 rows for the bundled artifacts
_BATCH_SUPPORTS = 2  # rows of a classification mini-batch, in support sets: 256
_STEP_SUPPORTS = 16  # rows regression's steps take, in support sets: 2,048
_VALIDATION_SUPPORTS = 16  # the validation sample's draws at most, in support sets: 2,048
_DEFAULT_SUPPORT = 128  # an artifact whose manifest does not record its support size
_CHUNK_ROWS = 4096  # rows per chunk of the head's fit and of predictions: a few MB of activations per member


def _support_size(artifact: MetaArtifact) -> int:
    """The largest support set of the artifact's meta-training tasks (its task family's ``shots``)."""
    family = artifact.manifest.get("task_family") or {}
    shots = (family.get("config") or {}).get("shots")
    if isinstance(shots, int):
        return shots
    if isinstance(shots, (list, tuple)) and shots and all(isinstance(s, int) for s in shots):
        return max(shots)
    return _DEFAULT_SUPPORT


def _row_threshold(artifact: MetaArtifact) -> int:
    """Fits on more rows than this (with a positive weight) adapt on a subsample; see the module's notes."""
    return _ROWS_PER_SUPPORT * _support_size(artifact)


def _draw(
    targets: np.ndarray, weight: np.ndarray, pool: np.ndarray, size: int, rng: np.random.RandomState, by_class: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``size`` draws from the rows ``pool``, with replacement and in proportion to ``weight``.

    With ``by_class``, each class gets draws in proportion to its total weight (largest remainders,
    at least one). Returns the distinct rows drawn (ascending) and how often each was drawn.
    """
    labels = targets[pool] if by_class else np.zeros(len(pool), dtype=np.int64)
    _, group = np.unique(labels, return_inverse=True)
    w = weight[pool]
    totals = np.bincount(group, weights=w)
    share = size * totals / totals.sum()
    quota = np.floor(share).astype(np.int64)
    quota[np.argsort(quota - share)[: size - quota.sum()]] += 1  # largest remainders first
    drawn = []
    for g, q in enumerate(np.maximum(quota, 1)):
        rows = np.flatnonzero(group == g)
        drawn.append(pool[rows[rng.choice(len(rows), int(q), p=w[rows] / w[rows].sum())]])
    rows, counts = np.unique(np.concatenate(drawn), return_counts=True)
    return rows, counts.astype(np.float64)


def _split(
    targets: np.ndarray, weight: np.ndarray, size: int, rng: np.random.RandomState, by_class: bool
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """(rows, weights) of a validation sample, and the other rows of positive weight, for training.

    The validation sample is ``size`` draws, or a fifth of the rows when that is fewer.
    """
    pool = np.flatnonzero(weight > 0)
    valid = _draw(targets, weight, pool, min(size, len(pool) // 5), rng, by_class)
    return valid, np.setdiff1d(pool, valid[0], assume_unique=True)


def _mini_batches(
    targets: np.ndarray,
    weight: np.ndarray,
    rows: np.ndarray,
    size: int,
    n: int,
    rng: np.random.RandomState,
    by_class: bool,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows, weights) of up to ``n`` disjoint mini-batches of at most ``size`` of ``rows``, each row with its weight.

    The rows are shuffled; with ``by_class`` each class is spread evenly along the order, so that every
    mini-batch holds the classes in proportion. Only the rows the ``n`` batches need are used.
    """
    order = rng.permutation(rows)
    if by_class:
        labels = targets[order]
        position = np.empty(len(order))
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            position[members] = (np.arange(len(members)) + rng.uniform()) / len(members)
        order = order[np.argsort(position, kind="stable")]
    n_batches = max(1, min(n, -(-len(order) // size)))
    batches = np.array_split(order[: n_batches * size], n_batches)
    return [(np.sort(b), weight[np.sort(b)]) for b in batches]


@torch.no_grad()
def _head_on_all_rows(
    est: _MetaLearnedEstimator, X: np.ndarray, targets: np.ndarray, weight: np.ndarray, params: Params | None = None
) -> Params:
    """Every member's ``params`` (default: the initialisation) with the ridge head refitted on all rows.

    The same fit as :meth:`TabularNet.initialize_from_support` on each member's view of the whole
    table, with the normal equations accumulated over chunks of ``_CHUNK_ROWS`` rows.
    """
    model: Any = est._learner.model
    n_members, width = len(est.member_features_), model.hidden + 1
    if params is None:
        params = {name: t.expand(n_members, *t.shape).clone() for name, t in est._learner.init_params().items()}
    embed = torch.vmap(lambda p, x: functional_call(model, p, (x,), {"embed_only": True}))
    gram = cross = None
    for start in range(0, len(X), _CHUNK_ROWS):
        rows = slice(start, start + _CHUNK_ROWS)
        support = est._batch(X[rows], targets[rows], weight[None, rows]).support()
        h = embed(params, support["x"])
        root = support["mask"].sqrt()[..., None]
        # The normal equations in float64 whatever the model's dtype: they sum over every row.
        ha = (torch.cat([h, torch.ones_like(h[..., :1])], -1) * root).double()
        ta = (_head_targets(support["y"], support["class_mask"]) * root).double()
        gram = ha.mT @ ha if gram is None else gram + ha.mT @ ha
        cross = ha.mT @ ta if cross is None else cross + ha.mT @ ta
    assert gram is not None and cross is not None  # X has rows (checked by validation)
    eye = torch.eye(width, dtype=gram.dtype, device=gram.device)
    coef = torch.linalg.solve(gram + params["log_ridge"].double().exp()[:, None, None] * eye, cross)
    coef = torch.nn.functional.pad(coef, (0, model.out_features - coef.shape[-1]))
    coef = (coef / params["log_scale"].double().exp()[:, None, None]).to(params["log_scale"].dtype)
    return {**params, "head.weight": coef[:, :-1].mT.contiguous(), "head.bias": coef[:, -1].contiguous()}


def _head_targets(y: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """The ridge head's targets (members, rows, outputs), as in ``initialize_from_support``."""
    if y.dtype in (torch.int64, torch.int32):
        one_hot = torch.nn.functional.one_hot(y, present.shape[-1]).to(present.dtype) * present[:, None]
        return one_hot - (present / present.sum(-1, keepdim=True))[:, None]  # centred indicators
    return y * present[:, None]


def _path(
    learner: Learner, batches: list[TaskBatch], start: Params, candidates: list[int]
) -> Iterator[tuple[int, Params]]:
    """``(steps, fast weights)`` after each step count in ``candidates`` (ascending), one trajectory from ``start``.

    Step ``i`` (from 0) is taken on ``batches[i % len(batches)]``. A generator, so that a caller may stop early.
    """
    supports = [b.support() for b in batches]
    params, done = start, 0
    for steps in candidates:
        if steps > done:
            first = done % len(supports)
            params = _steps_from(learner, supports[first:] + supports[:first], params, done, steps - done)
            done = steps
        yield steps, params


def _uses_head_on_all_rows(learner: Learner) -> bool:
    # A TabularNet's head has a closed form, and the base class's inner loop can start from it.
    return isinstance(learner.model, TabularNet) and type(learner).adapt_batch is Learner.adapt_batch


def _fit_on_many_rows(
    est: _MetaLearnedEstimator,
    X: np.ndarray,
    targets: np.ndarray,
    weight: np.ndarray,
    rng: np.random.RandomState,
    candidates: list[int],
) -> None:
    """Fit ``est`` on a table above the threshold: its ``params_`` and, with candidates, the chosen settings.

    ``candidates`` are the step counts to choose among on the validation sample (none: ``est``'s
    fixed step count, and no validation).
    """
    est.artifact_.learner.to(dtype=torch.float32)
    by_class, support = est._task_type == "classification", _support_size(est.artifact_)
    (valid, valid_weight), rest = _split(targets, weight, _VALIDATION_SUPPORTS * support, rng, by_class)
    steps = candidates or [est._steps()]
    closed_form = _uses_head_on_all_rows(est._learner)
    if by_class:
        drawn = _mini_batches(targets, weight, rest, _BATCH_SUPPORTS * support, max(max(steps), 1), rng, by_class)
        batches = [est._batch(X[rows], targets[rows], w[None]) for rows, w in drawn]
        # Another model or inner loop starts as its own adaptation does, fitted to one mini-batch.
        path = (
            _path(est._learner, batches, _head_on_all_rows(est, X, targets, weight), steps)
            if closed_form
            else _adapt_path(est._learner, batches[0], steps)
        )
    else:
        ((rows, w),) = _mini_batches(targets, weight, rest, _STEP_SUPPORTS * support, 1, rng, by_class)
        path = _adapt_path(est._learner, est._batch(X[rows], targets[rows], w[None]), steps)
    if candidates:
        best, kept, scores = _select_steps(path, _validation_scorer(est, X[valid], targets[valid], valid_weight))
        est._keep_choice(scores, best, several=len(candidates) > 1)
    else:
        kept = dict(path)[steps[0]]
    # Regression: the head that squared error asks of the adapted body, in closed form on every row.
    est.params_ = _head_on_all_rows(est, X, targets, weight, kept) if closed_form and not by_class else kept


def _validation_scorer(
    est: _MetaLearnedEstimator, X: np.ndarray, targets: np.ndarray, weight: np.ndarray
) -> Callable[[Params], tuple[float, dict[str, Any]]]:
    """The held-out score (and settings fitted on the held-out rows) of fast weights on the validation rows."""
    cv = est._cv_members()
    apply = torch.vmap(functional_apply(est._learner.model))
    x = torch.as_tensor(est._members(X, cv), dtype=est._dtype, device=est._device)
    w = torch.as_tensor(weight[None], dtype=torch.float64)

    @torch.no_grad()
    def score(params: Params) -> tuple[float, dict[str, Any]]:
        out = apply({n: t[cv] for n, t in params.items()}, x)[..., : est._member_outputs()]
        return est._held_out_score(out.to("cpu", torch.float64)[None], targets, w)

    return score


def _subsample(
    targets: np.ndarray, weight: np.ndarray, size: int, rng: np.random.RandomState, by_class: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, weights) of ``size`` draws from the rows of positive weight, as for ``_split``'s training rows."""
    return _draw(targets, weight, np.flatnonzero(weight > 0), size, rng, by_class)


def _output_chunks(est: _MetaLearnedEstimator, X: np.ndarray) -> Iterator[torch.Tensor]:
    """Every member's outputs (members, rows, outputs) on the CPU, for ``_CHUNK_ROWS`` rows of ``X`` at a time."""
    apply = torch.vmap(functional_apply(est._learner.model))
    for start in range(0, len(X), _CHUNK_ROWS):
        members = torch.as_tensor(est._members(X[start : start + _CHUNK_ROWS]), dtype=est._dtype, device=est._device)
        with torch.no_grad():
            yield apply(est.params_, members)[..., : est._member_outputs()].cpu()
