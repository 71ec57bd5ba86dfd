"""The ensemble members of the scikit-learn estimators: which columns and which targets each one sees (private).

A member is one adaptation of the artifact's model, all members adapted at once as one batch. Each
sees the (encoded, standardised) table through an index array into its columns:

- a table the model can take whole: every member sees every column, each member in its own random
  order (the first in the table's order), since the model treats its input rows as exchangeable;
- a table wider than the model's ``in_features``: each member sees a random subset of
  ``in_features`` columns. Members come in rounds; a round is one random permutation of the columns
  cut into consecutive blocks (the last wrapping around to the permutation's start), so that every
  column is seen in every round. An ensemble of ``n_ensemble`` members is rounded up to whole rounds.

Regression members also each get a chunk of at most ``out_features`` targets (see
:func:`_target_chunks`); classification members, with more classes than ``out_features``, each get
their own grouping of the classes (see ``_sklearn_output_code``).
"""

from __future__ import annotations

import numpy as np
import torch


def _feature_views(n_features: int, width: int, n_members: int, rng: np.random.RandomState) -> np.ndarray:
    """(n_views, min(n_features, width)) column indices of at least ``n_members`` members.

    Exactly ``n_members`` views when the table fits the model; otherwise whole rounds of
    ``ceil(n_features / width)`` subsets, at least one round.
    """
    if n_features <= width:
        return np.stack([np.arange(n_features)] + [rng.permutation(n_features) for _ in range(n_members - 1)])
    per_round = -(-n_features // width)
    views = []
    for _ in range(-(-n_members // per_round)):
        order = rng.permutation(n_features)
        views += [np.take(order, np.arange(i * width, (i + 1) * width), mode="wrap") for i in range(per_round)]
    return np.stack(views)


def _target_chunks(n_targets: int, max_outputs: int) -> np.ndarray:
    """(n_chunks, chunk_width) target columns of each chunk of at most ``max_outputs``, padded with -1.

    The chunks are as equal in size as possible; a single chunk holds every target in order.
    """
    chunks = np.array_split(np.arange(n_targets), -(-n_targets // max_outputs))
    width = len(chunks[0])
    return np.stack([np.pad(chunk, (0, width - len(chunk)), constant_values=-1) for chunk in chunks])


def _chunk_targets(targets: np.ndarray, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each member's targets (n_members, n_samples, width), zero where padded, and its output mask.

    ``targets`` (n_samples, n_targets); ``chunks`` (n_members, width) the target columns of each member.
    """
    y = np.where(chunks >= 0, targets[:, chunks], 0.0).transpose(1, 0, 2)
    return y, (chunks >= 0).astype(np.float64)


def _combine_chunks(outputs: torch.Tensor, chunks: np.ndarray, n_targets: int) -> torch.Tensor:
    """Predictions (..., n_samples, n_targets) from members' outputs (..., n_members, n_samples, width).

    Each target is the mean over the members whose chunk holds it.
    """
    distinct = np.unique(chunks, axis=0)
    if len(distinct) == 1:  # one chunk: every member predicts every target
        return outputs.mean(-3)
    pred = outputs.new_zeros(*outputs.shape[:-3], outputs.shape[-2], n_targets)
    for chunk in distinct:
        members = torch.as_tensor(np.flatnonzero((chunks == chunk).all(1)))
        columns = chunk[chunk >= 0]
        pred[..., torch.as_tensor(columns)] = outputs.index_select(-3, members)[..., : len(columns)].mean(-3)
    return pred
