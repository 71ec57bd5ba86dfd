"""Task families, padding and masks, user data as tasks, and clear errors for bad data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from automl_meta import TaskError
from automl_meta.tasks import Sinusoid, SyntheticTabular, Task, TaskBatch, from_config, from_datasets, from_groups


def test_sinusoid_follows_the_protocol():
    batch, amp, phase = Sinusoid(shots=7, query_shots=13).sample_with_truth(200, rng=0)
    assert batch.x_support.shape == (200, 7, 1) and batch.y_query.shape == (200, 13, 1)
    assert ((amp >= 0.1) & (amp <= 5)).all() and ((phase >= 0) & (phase <= math.pi)).all()
    x = torch.cat([batch.x_support, batch.x_query], 1)
    y = torch.cat([batch.y_support, batch.y_query], 1)
    assert x.abs().max() <= 5
    expected = torch.as_tensor(amp)[:, None, None] * torch.sin(x - torch.as_tensor(phase)[:, None, None])
    assert torch.allclose(y, expected.float(), atol=1e-5)


def test_sampling_is_seeded():
    a, b, c = (Sinusoid().sample(4, rng=s) for s in (1, 1, 2))
    assert torch.equal(a.x_support, b.x_support) and not torch.equal(a.x_support, c.x_support)


def test_ragged_tasks_are_padded_with_masks():
    r = np.random.default_rng(0)
    a = Task(r.normal(size=(3, 2)), [0, 1, 0], r.normal(size=(4, 2)), [1, 1, 0, 0], task_type="classification")
    b = Task(r.normal(size=(6, 5)), [0, 1, 2, 3, 0, 1], r.normal(size=(2, 5)), [2, 3], task_type="classification")
    batch = TaskBatch.from_tasks([a, b])
    assert batch.x_support.shape == (2, 6, 5) and batch.n_outputs == 4
    assert batch.support_mask.tolist() == [[1, 1, 1, 0, 0, 0], [1] * 6]
    assert batch.feature_mask.sum(1).tolist() == [2, 5] and batch.class_mask.sum(1).tolist() == [2, 4]
    assert torch.all(batch.x_support[0, 3:] == 0) and torch.all(batch.x_support[0, :, 2:] == 0)
    assert batch.select(1).x_support.shape == (1, 6, 5)


@pytest.mark.parametrize("task_type", ["classification", "regression"])
def test_synthetic_tabular_varies_shapes_within_ranges(task_type):
    fam = SyntheticTabular(task_type, n_features=(2, 6), n_classes=(2, 4), shots=(5, 20), query_shots=10)
    batch = fam.sample(40, rng=0)
    feats, shots = batch.feature_mask.sum(1), batch.support_mask.sum(1)
    assert feats.min() >= 2 and feats.max() <= 6 and len(set(feats.tolist())) > 1
    assert shots.min() >= 5 and shots.max() <= 20 and len(set(shots.tolist())) > 1
    if task_type == "classification":
        classes = batch.class_mask.sum(1)
        assert classes.min() >= 2 and classes.max() <= 4
        assert torch.all(batch.y_support < classes[:, None].long())
    assert torch.equal(fam.sample(3, rng=5).x_query, fam.sample(3, rng=5).x_query)
    assert from_config(fam.describe()).describe() == fam.describe()


def table():
    r = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "store": np.repeat(["a", "b", "c"], [12, 15, 20]),
            "f1": r.normal(size=47),
            "f2": r.normal(size=47),
            "churn": r.choice(["no", "yes"], 47),
        }
    )


def test_from_groups_makes_one_task_per_group():
    tasks = from_groups(table(), group="store", target="churn", shots=5, query_shots=4)
    assert len(tasks) == 3 and tasks.names == ["a", "b", "c"] and tasks.task_type == "classification"
    assert list(tasks.classes_) == ["no", "yes"] and tasks.n_features == 2
    batch = tasks.sample(6, rng=0)
    assert batch.x_support.shape == (6, 5, 2) and batch.x_query.shape == (6, 4, 2)


def test_from_datasets_pads_different_widths():
    r = np.random.default_rng(0)
    tasks = from_datasets(
        [(r.normal(size=(30, 3)), r.normal(size=30)), (r.normal(size=(20, 6)), r.normal(size=20))], shots=8
    )
    assert tasks.task_type == "regression" and tasks.n_features == 6
    assert set(tasks.sample(10, rng=0).feature_mask.sum(1).tolist()) == {3.0, 6.0}


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: from_datasets([(np.zeros((5, 2)), np.zeros(4))]), "X has 5 rows but y has 4"),
        (lambda: from_datasets([(np.array([[1.0, np.nan]] * 20), np.zeros(20))]), "X contains NaN"),
        (lambda: from_datasets([(np.zeros((20, 2)), np.r_[np.nan, np.zeros(19)])]), "y contains NaN"),
        (lambda: from_datasets([(np.zeros((0, 2)), np.zeros(0))]), "is empty"),
        (lambda: from_datasets([]), "at least one"),
        (lambda: from_groups(table(), group="store", target="churn", shots=12), "'a' \\(12 rows\\)"),
        (lambda: from_groups(table(), group="shop", target="churn"), "Columns \\['shop'\\] are not in the table"),
        (lambda: from_groups(table().assign(f3="x"), group="store", target="churn"), "not numeric"),
        (lambda: from_groups(table().iloc[:0], group="store", target="churn"), "table is empty"),
        (lambda: from_groups(table(), group="store", target="churn", task_type="ranking"), "task_type must be"),
        (lambda: SyntheticTabular(mechanisms=["mlp", "forest"]), "mechanisms must be"),
        (lambda: SyntheticTabular(mechanisms="forest"), "mechanisms must be.*\\['forest'\\]"),
        (lambda: SyntheticTabular(n_features=True), "n_features must be an int"),
        (lambda: SyntheticTabular(n_classes=(2, True)), "n_classes must be an int"),
        (lambda: SyntheticTabular(shots="8"), "shots must be an int"),
        (
            lambda: from_groups(
                table().assign(store=lambda t: t["store"].where(t.index > 0)), group="store", target="churn"
            ),
            "1 row\\(s\\) have no value in the group column 'store'",
        ),
        (lambda: SyntheticTabular("clustering"), "task_type must be"),
        (lambda: SyntheticTabular("regression", noise=(0.0, 0.1, 5)), "noise must be a \\(low, high\\) pair"),
        (lambda: Sinusoid(shots=0), "shots must be an integer >= 1"),
        (lambda: Sinusoid(shots=2.5), "shots must be an integer >= 1"),
        (lambda: Sinusoid(shots=True), "shots must be an integer >= 1"),
        (lambda: Sinusoid().sample(0), "n_tasks must be an integer >= 1"),
        (lambda: Task(np.zeros((3, 2)), np.zeros(3), np.zeros((2, 3)), np.zeros(2)), "different feature counts"),
        (lambda: Task(np.zeros((3, 2)), np.zeros(3), np.zeros((0, 2)), np.zeros(0)), "query set is empty"),
        (lambda: Task(np.zeros(3), np.zeros(3), np.zeros((2, 1)), np.zeros(2)), "must be 2-D"),
        (
            lambda: Task(np.zeros((2, 1)), [0, -1], np.zeros((2, 1)), [0, 1], task_type="classification"),
            "negative labels",
        ),
        (
            lambda: Task(np.zeros((2, 1)), [0.5, 1], np.zeros((2, 1)), [0, 1], task_type="classification"),
            "integer class labels",
        ),
    ],
)
def test_bad_data_gets_a_clear_error(build, message):
    with pytest.raises(TaskError, match=message):
        build()


def test_one_mechanism_may_be_named_alone():
    tasks = SyntheticTabular(mechanisms="tree")
    assert tasks.mechanisms == ("tree",) and tasks.sample(2, rng=0).x_support.shape[0] == 2


def test_unrelated_datasets_keep_their_own_class_counts():
    rng = np.random.default_rng(0)
    data = [(rng.normal(size=(40, 3)), rng.integers(0, 2, 40)), (rng.normal(size=(40, 3)), rng.integers(0, 5, 40))]
    tasks = from_datasets(data, shots=10, query_shots=20)
    assert tasks.n_outputs == 5
    assert tasks.split(0, rng).n_outputs == 2 and tasks.split(1, rng).n_outputs == 5
    # Related datasets share their labels' meaning, so every task keeps the family's classes.
    shared = from_datasets(data, shots=10, query_shots=20, shared_features=True)
    assert shared.split(0, rng).n_outputs == 5


def test_task_error_is_a_value_error_and_unknown_options_are_type_errors():
    assert issubclass(TaskError, ValueError)
    with pytest.raises(TypeError, match="shot"):
        Sinusoid(shot=5)
    with pytest.raises(TaskError, match="cannot be rebuilt"):
        from_config(from_groups(table(), group="store", target="churn", shots=5).describe())
