"""The Preprocessing record: read from every artifact (old ones too), checked with the manifest, and applied
alike by MetaArtifact.adapt and the scikit-learn estimators."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

import automl_meta as am
from automl_meta import ArtifactError
from automl_meta.artifacts.manifest import Manifest
from automl_meta.artifacts.preprocessing import Preprocessing
from automl_meta.integrations.sklearn import MetaLearnedClassifier, MetaLearnedRegressor

# task_family as meta_fit wrote it before the record existed (no feature_clip; feature_names written by describe).
OLD_FAMILY = {
    "config": None,
    "family": "DatasetTasks",
    "feature_mean": [-0.0237, 4.8543],
    "feature_names": ["price", "promo"],
    "feature_scale": [1.0179, 2.7764],
    "n_features": 2,
    "n_outputs": 1,
    "n_tasks": 12,
    "query_shots": 16,
    "shared_features": True,
    "shots": 8,
    "target_mean": [3.4782],
    "target_scale": [2.5449],
    "task_type": "regression",
}


def _table(seed: int = 0, stores: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "store": np.repeat(np.arange(stores), 40),
            "price": rng.normal(size=40 * stores),
            "promo": rng.normal(size=40 * stores) * 3 + 5,
        }
    )
    df["sales"] = -2 * df["price"] + df["store"] % 3 + 0.5 * df["promo"] + rng.normal(scale=0.1, size=len(df))
    df["kind"] = np.where(df["sales"] > df["sales"].median(), "high", np.where(df["price"] > 0, "mid", "low"))
    return df


@pytest.fixture(scope="module")
def family_artifacts() -> dict[str, am.MetaArtifact]:
    df = _table()
    fit = dict(iterations=40, verbose=0, n_validation_tasks=8)
    reg = am.tasks.from_groups(df.drop(columns="kind"), group="store", target="sales", shots=8, query_shots=16)
    cls = am.tasks.from_groups(df.drop(columns="sales"), group="store", target="kind", shots=8, query_shots=16)
    return {"regression": am.meta_fit(reg, **fit), "classification": am.meta_fit(cls, **fit)}


@pytest.fixture(scope="module")
def new_member() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = _table(seed=5, stores=1)
    df.loc[3, "price"] = 40.0  # an outlier: clipped after scaling, by both paths
    return df[::2], df[1::2]


def test_an_old_format_task_family_reads_into_the_record():
    prep = Preprocessing.from_dict(OLD_FAMILY)
    assert prep == Preprocessing(
        feature_mean=(-0.0237, 4.8543),
        feature_scale=(1.0179, 2.7764),
        feature_clip=6.0,
        target_mean=(3.4782,),
        target_scale=(2.5449,),
        feature_names=("price", "promo"),
        shared_features=True,
    )
    written = prep.to_dict()
    assert {k: OLD_FAMILY[k] for k in written if k != "feature_clip"} == {
        k: v for k, v in written.items() if k != "feature_clip"
    }


def test_an_old_format_artifact_file_loads_into_the_same_record_and_predicts_the_same(
    family_artifacts, tmp_path, new_member
):
    artifact = family_artifacts["regression"]
    old = copy.deepcopy(artifact)
    old.task_family.pop("feature_clip")  # as written before the record
    old.task_family["feature_names"] = list(old.task_family["feature_names"])
    loaded = am.load(old.save(tmp_path / "old.ameta"))
    assert "feature_clip" not in loaded.task_family and loaded.preprocessing == artifact.preprocessing
    train, test = new_member
    X, y = train[["price", "promo"]], train["sales"]
    a = MetaLearnedRegressor(loaded, random_state=0).fit(X, y).predict(test[["price", "promo"]])
    b = MetaLearnedRegressor(artifact, random_state=0).fit(X, y).predict(test[["price", "promo"]])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["default-tabular-classification", "default-tabular-regression", "default-l2o"])
def test_bundled_artifacts_read_into_the_default_record(name):
    assert am.load(name).preprocessing == Preprocessing()


def test_meta_fit_writes_the_family_record(family_artifacts):
    reg, cls = family_artifacts["regression"].preprocessing, family_artifacts["classification"].preprocessing
    assert reg.shared_features and reg.feature_names == ("price", "promo") and reg.feature_clip == 6.0
    assert len(reg.feature_mean) == 2 and len(reg.target_scale) == 1 and reg.classes is None
    assert cls.classes == ("high", "low", "mid") and cls.target_mean is None and cls.scales_features


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("feature_mean", "x", "field 'task_family.feature_mean' must be a list of finite numbers or null, found str"),
        ("feature_scale", [1.0, 0.0], "field 'task_family.feature_scale' must be a list of positive"),
        ("feature_clip", -1, "field 'task_family.feature_clip' must be a positive number"),
        ("classes", ["a", "a"], "field 'task_family.classes' must be a list of at least 2 distinct labels"),
        ("classes", ["a", 1], "field 'task_family.classes' must be"),
        ("feature_names", [1, 2], "field 'task_family.feature_names' must be a list of strings"),
        ("shared_features", "yes", "field 'task_family.shared_features' must be true or false"),
        ("target_mean", [1.0], "field 'task_family.target_mean' must come with 'task_family.target_scale'"),
    ],
)
def test_the_manifest_refuses_a_bad_record_naming_the_field(key, value, message):
    document = am.load("default-tabular-regression").manifest
    document["task_family"] = {**document["task_family"], key: value}
    with pytest.raises(ArtifactError, match=f"^'f.ameta' has an invalid manifest: {message}"):
        Manifest.from_document(document, "f.ameta")


def _float64(artifact: am.MetaArtifact) -> am.MetaArtifact:
    artifact = copy.deepcopy(artifact)
    artifact.learner.to(torch.float64)  # the precision the estimators compute in
    return artifact


# The same float64 computation up to the last bits: the estimator runs its model batched over ensemble members,
# adapt() runs one, and on some CPUs the BLAS kernels for the two shapes round differently (1e-15 here).
_SAME = {"rtol": 1e-12, "atol": 1e-12}


@pytest.mark.parametrize("steps", [0, 3, 7])
def test_adapt_predicts_what_the_regressor_predicts_for_a_family_artifact(family_artifacts, new_member, steps):
    artifact = _float64(family_artifacts["regression"])
    train, test = new_member
    X, y, X2 = train[["price", "promo"]], train["sales"], test[["price", "promo"]]
    expected = MetaLearnedRegressor(artifact, adapt_steps=steps).fit(X, y).predict(X2)
    np.testing.assert_allclose(
        artifact.adapt(X.to_numpy(), y.to_numpy(), steps=steps).predict(X2.to_numpy()), expected, **_SAME
    )


@pytest.mark.parametrize("steps", [0, 3, 7])
def test_adapt_predicts_what_the_classifier_predicts_for_a_family_artifact(family_artifacts, new_member, steps):
    artifact = _float64(family_artifacts["classification"])
    train, test = new_member
    X, y, X2 = train[["price", "promo"]].to_numpy(), train["kind"].to_numpy(), test[["price", "promo"]].to_numpy()
    clf = MetaLearnedClassifier(artifact, adapt_steps=steps).fit(X, y)
    adapted = artifact.adapt(X, y, steps=steps)
    np.testing.assert_allclose(adapted.predict_proba(X2), clf.predict_proba(X2), **_SAME)
    np.testing.assert_array_equal(adapted.predict(X2), clf.predict(X2))
    assert set(adapted.predict(X2)) <= {"high", "low", "mid"}


def test_adapt_in_the_artifacts_float32_is_close_to_the_estimator(family_artifacts, new_member):
    artifact = family_artifacts["regression"]
    train, test = new_member
    X, y, X2 = train[["price", "promo"]].to_numpy(), train["sales"].to_numpy(), test[["price", "promo"]].to_numpy()
    expected = MetaLearnedRegressor(artifact, adapt_steps=3).fit(X, y).predict(X2)
    np.testing.assert_allclose(artifact.adapt(X, y, steps=3).predict(X2), expected, rtol=1e-4, atol=1e-4)


def test_adapt_refuses_labels_and_widths_the_family_lacks(family_artifacts):
    artifact = family_artifacts["classification"]
    with pytest.raises(am.TaskError, match="classes \\['other'\\] that the artifact's family lacks"):
        artifact.adapt(np.zeros((4, 2)), np.array(["high", "low", "mid", "other"]))
    with pytest.raises(am.TaskError, match="shape \\(n_samples, 2\\)"):
        artifact.adapt(np.zeros((4, 3)), np.array(["high", "low", "mid", "low"]))


def test_the_record_replaces_its_keys_and_keeps_the_others(family_artifacts):
    artifact = copy.deepcopy(family_artifacts["regression"])
    artifact.preprocessing = dataclasses.replace(artifact.preprocessing, target_mean=None, target_scale=None)
    assert "target_mean" not in artifact.task_family and artifact.task_family["family"] == "DatasetTasks"
    assert artifact.preprocessing.target_mean is None and artifact.preprocessing.scales_features
