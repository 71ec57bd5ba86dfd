"""CorpusTabular: real tables as tasks, prepared as the estimators prepare their data, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from automl_meta import TaskError
from automl_meta.corpus import CorpusTask, load_corpus
from automl_meta.tasks import CorpusTabular, SyntheticTabular


@pytest.fixture(scope="module")
def classification():
    return load_corpus("meta-train", max_rows=300, task_type="classification")


@pytest.fixture(scope="module")
def regression():
    return load_corpus("meta-train", max_rows=300, task_type="regression")[:6]


def _table(name, X, y, classes=None):
    task_type = "regression" if classes is None else "classification"
    return CorpusTask(name, "test", name, "y", task_type, X, np.asarray(y), classes, "0", "meta-train")


def _coded(n_classes, n_rows):
    """A table whose only feature is its class code, so a task's labels can be read against the codes."""
    y = np.arange(n_rows) % n_classes
    X = pd.DataFrame({"code": y.astype(float)})
    return _table("coded", X, y, tuple(f"c{i}" for i in range(n_classes)))


def _by_code(task):
    """Each original class's label in the task (the standardised code column keeps the codes' order)."""
    x = np.concatenate([task.x_support[:, 0], task.x_query[:, 0]])
    y = np.concatenate([task.y_support, task.y_query])
    codes = np.unique(np.round(x, 8), return_inverse=True)[1]
    return [sorted(set(y[codes == c].tolist())) for c in range(codes.max() + 1)]


def test_support_features_are_standardised_with_the_support_rows(classification):
    fam = CorpusTabular(classification[:8], n_features=(2, 6), shots=(30, 60), query_shots=20)
    rng = np.random.default_rng(0)
    for _ in range(20):
        task = fam.sample_task(rng)
        xs = task.x_support
        spread = xs.std(0) > 1e-6
        unclipped = spread & (np.abs(xs).max(0) < 6)  # clipping moves the statistics
        assert np.allclose(xs[:, unclipped].mean(0), 0, atol=1e-8)
        assert np.allclose(xs[:, unclipped].std(0), 1, atol=1e-8)
        assert np.allclose(xs[:, ~spread], 0)  # constant in the support: centred, scale 1
        assert np.abs(task.x_query).max() <= 6 and np.abs(xs).max() <= 6


def test_widths_and_shots_stay_in_range_and_vary(classification):
    tables = [t for t in classification if t.n_features >= 2][:10]
    fam = CorpusTabular(tables, n_features=(2, 5), shots=(8, 40), query_shots=16)
    batch = fam.sample(60, rng=1)
    widths, shots = batch.feature_mask.sum(1), batch.support_mask.sum(1)
    assert widths.min() >= 2 and widths.max() <= 5 and len(set(widths.tolist())) > 1
    assert shots.min() >= 8 and shots.max() <= 40 and len(set(shots.tolist())) > 1
    assert batch.query_mask.sum(1).eq(16).all()
    assert batch.n_features == 5 and batch.n_outputs == 10 == fam.n_outputs


def test_wide_tables_are_seen_through_column_subsets_in_random_order():
    # Column j takes j + 2 distinct values, which standardisation keeps: the level count names the column.
    X = pd.DataFrame({f"f{j}": (np.arange(200) % (j + 2)).astype(float) for j in range(30)})
    fam = CorpusTabular([_table("wide", X, np.arange(200.0))], n_features=(3, 8), shots=150, query_shots=50)
    drawn = []
    for s in range(12):
        task = fam.sample_task(np.random.default_rng(s))
        x = np.concatenate([task.x_support, task.x_query])  # every row: support and query use all 200
        drawn.append([len(np.unique(np.round(col, 8))) - 2 for col in x.T])
    assert all(3 <= len(cols) <= 8 and len(set(cols)) == len(cols) for cols in drawn)
    assert len({c for cols in drawn for c in cols}) > 20  # subsets reach across the 30 columns
    assert any(cols != sorted(cols) for cols in drawn)  # in random order


def test_more_classes_than_outputs_are_merged_into_groups():
    fam = CorpusTabular([_coded(13, 260)], n_classes=10, shots=(150, 190), query_shots=64)
    rng = np.random.default_rng(0)
    groupings = set()
    for _ in range(10):
        task = fam.sample_task(rng)
        labels = np.concatenate([task.y_support, task.y_query])
        assert task.n_classes == 10 and labels.min() >= 0 and labels.max() < 10
        by_code = _by_code(task)
        assert len(by_code) == 13 and all(len(ls) == 1 for ls in by_code)  # a class stays in one group
        assert len({ls[0] for ls in by_code}) == 10  # every group is used
        groupings.add(tuple(ls[0] for ls in by_code))
    assert len(groupings) > 5  # random groups


def test_labels_are_permuted_between_draws():
    fam = CorpusTabular([_coded(4, 200)], shots=120, query_shots=40)
    mappings = set()
    for s in range(10):
        task = fam.sample_task(np.random.default_rng(s))
        by_code = _by_code(task)
        assert task.n_classes == 4 and sorted(ls[0] for ls in by_code) == [0, 1, 2, 3]
        mappings.add(tuple(ls[0] for ls in by_code))
    assert len(mappings) > 3


def test_regression_support_targets_are_standardised(regression):
    fam = CorpusTabular(regression, shots=(20, 60), query_shots=30)
    assert fam.task_type == "regression" and fam.n_outputs == 1
    rng = np.random.default_rng(0)
    for _ in range(10):
        ys = fam.sample_task(rng).y_support[:, 0]
        assert abs(ys.mean()) < 1e-8 and abs(ys.std() - 1) < 1e-8


def test_small_tables_keep_a_quarter_of_their_rows_for_the_query():
    X = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) ** 2})
    fam = CorpusTabular([_table("small", X, np.arange(40.0))], shots=100, query_shots=64)
    task = fam.sample_task(np.random.default_rng(0))
    assert task.n_query == 10 and task.n_support == 30


def test_the_same_seed_gives_the_same_batch(classification):
    fam = CorpusTabular(classification[:6], n_features=(1, 10))
    a, b, c = (fam.sample(5, rng=s) for s in (3, 3, 4))
    assert all(torch.equal(x, y) for x, y in zip(a.tensors().values(), b.tensors().values()))
    assert not torch.equal(a.x_support, c.x_support)


def test_it_pads_like_the_synthetic_prior_and_describes_a_universal_family(classification):
    fam = CorpusTabular(classification[:3])
    synthetic = SyntheticTabular("classification", n_features=(1, 64), n_classes=(2, 10))
    assert (fam.n_features, fam.n_outputs) == (synthetic.n_features, synthetic.n_outputs)
    d = fam.describe()
    assert d["family"] == "CorpusTabular" and d["tasks"] == [t.name for t in classification[:3]]
    assert fam.get_config() is None and d["config"] is None
    assert not {"feature_names", "shared_features", "classes", "feature_mean", "target_mean"} & set(d)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda c, r: CorpusTabular([]), "at least one corpus task"),
        (lambda c, r: CorpusTabular([c[0], r[0]]), "must be classification tasks"),
        (lambda c, r: CorpusTabular(r[:2], task_type="classification"), "must be classification tasks"),
        (lambda c, r: CorpusTabular([(1, 2)]), "takes CorpusTask records"),
        (lambda c, r: CorpusTabular(c[:1], n_classes=1), "n_classes must be"),
        (lambda c, r: CorpusTabular(c[:1], shots=(10, 5)), "shots must be"),
    ],
)
def test_bad_input_is_refused_clearly(classification, regression, make, message):
    with pytest.raises(TaskError, match=message):
        make(classification, regression)
