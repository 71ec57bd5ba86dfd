"""MixtureTasks: tasks from several families by weight, padded to the widest, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from automl_meta import TaskError
from automl_meta.tasks import DatasetTasks, MixtureTasks, Sinusoid, SyntheticTabular, from_datasets


def _families():
    # Widths 1-3 and 10-12 never overlap: a task's width says which family drew it.
    narrow = SyntheticTabular("classification", n_features=(1, 3), n_classes=(2, 3), shots=10, query_shots=5)
    wide = SyntheticTabular("classification", n_features=(10, 12), n_classes=(2, 6), shots=10, query_shots=5)
    return narrow, wide


@pytest.mark.parametrize("weights, expected", [(None, 0.5), ([3, 1], 0.75), ([0.2, 0.8], 0.2)])
def test_tasks_come_from_each_family_in_proportion(weights, expected):
    mix = MixtureTasks(_families(), weights=weights)
    widths = mix.sample(400, rng=0).feature_mask.sum(1)
    share_narrow = float((widths <= 3).float().mean())
    assert abs(share_narrow - expected) < 0.07
    assert set(widths.tolist()) <= {1.0, 2.0, 3.0, 10.0, 11.0, 12.0}


def test_batches_pad_to_the_widest_family_and_keep_each_familys_classes():
    mix = MixtureTasks(_families())
    assert (mix.n_features, mix.n_outputs, mix.task_type) == (12, 6, "classification")
    batch = mix.sample(50, rng=1)
    assert batch.n_features == 12 and batch.n_outputs == 6
    narrow = batch.feature_mask.sum(1) <= 3
    assert batch.class_mask[narrow].sum(1).max() <= 3 and batch.class_mask[~narrow].sum(1).max() <= 6
    assert torch.all(batch.y_support < batch.class_mask.sum(1, keepdim=True).long())


def test_the_same_seed_gives_the_same_batch():
    mix = MixtureTasks(_families(), weights=[1, 2])
    a, b, c = (mix.sample(8, rng=s) for s in (5, 5, 6))
    assert all(torch.equal(x, y) for x, y in zip(a.tensors().values(), b.tensors().values()))
    assert not torch.equal(a.x_support, c.x_support)


def test_description_nests_the_components_and_stays_universal():
    r = np.random.default_rng(0)
    family = from_datasets([(r.normal(size=(30, 2)), r.normal(size=30))] * 2, shots=5, shared_features=True)
    assert isinstance(family, DatasetTasks) and family.describe()["shared_features"] is True
    mix = MixtureTasks([SyntheticTabular("regression"), family], weights=[1, 1])
    d = mix.describe()
    assert d["family"] == "MixtureTasks" and d["weights"] == [0.5, 0.5] and mix.get_config() is None
    assert [c["family"] for c in d["components"]] == ["SyntheticTabular", "DatasetTasks"]
    assert not {"feature_names", "shared_features", "classes", "feature_mean", "target_mean"} & set(d)


@pytest.mark.parametrize(
    "families, weights, message",
    [
        ([], None, "at least one task family"),
        ([SyntheticTabular("classification"), SyntheticTabular("regression")], None, "share one task type"),
        ([SyntheticTabular("regression"), Sinusoid()], [1, 0], "positive finite numbers"),
        ([SyntheticTabular("regression"), Sinusoid()], [1, -2], "positive finite numbers"),
        ([SyntheticTabular("regression"), Sinusoid()], [1], "2 positive finite numbers, one per family"),
        ([SyntheticTabular("regression"), Sinusoid()], [1, float("nan")], "positive finite"),
        ([SyntheticTabular("regression"), Sinusoid()], ["a", 1], "positive finite"),
        ([SyntheticTabular("regression"), "not a family"], None, "takes TaskDistribution families"),
    ],
)
def test_bad_input_is_refused_clearly(families, weights, message):
    with pytest.raises(TaskError, match=message):
        MixtureTasks(families, weights=weights)
