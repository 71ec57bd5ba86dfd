"""Artifacts: exact round trips without pickle, and refusals of bad files that name the file and the problem."""

from __future__ import annotations

import json
import pickle
import struct

import numpy as np
import pytest
import torch

import automl_meta as am
from automl_meta import ArtifactError
from automl_meta.artifacts import tensorfile


@pytest.fixture(scope="module")
def regression_artifact():
    learner = am.learners.MetaSGD(am.models.MLP([8]))
    return am.MetaTrainer(
        learner, am.tasks.Sinusoid(shots=5), iterations=5, eval_every=5, n_validation_tasks=5, verbose=0, seed=4
    ).fit()


@pytest.fixture(scope="module")
def classification_artifact():
    tasks = am.tasks.SyntheticTabular("classification", n_features=4, n_classes=3, shots=10)
    return am.MetaTrainer(
        am.learners.MAML(am.models.MLP([8])), tasks, iterations=5, eval_every=5, n_validation_tasks=5, verbose=0
    ).fit()


def test_round_trip_is_exact(regression_artifact, tmp_path, monkeypatch):
    path = regression_artifact.save(tmp_path / "a.ameta")

    def no_pickle(*a, **k):
        raise AssertionError("loading must not unpickle")

    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    loaded = am.load(path)
    a, b = regression_artifact.learner.state_dict(), loaded.learner.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.manifest == regression_artifact.manifest
    assert loaded.manifest["learner"]["meta_learns"] == ["init", "lr"] and loaded.seed == 4
    assert loaded.task_family["family"] == "Sinusoid" and "torch" in loaded.versions
    x = np.linspace(-5, 5, 6)[:, None]
    y = np.sin(x[:, 0])
    np.testing.assert_array_equal(
        regression_artifact.adapt(x, y, steps=3).predict(x), loaded.adapt(x, y, steps=3).predict(x)
    )
    # A safetensors file: 8-byte little-endian header length, then a JSON header.
    raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])
    assert json.loads(header["__metadata__"][tensorfile.DOCUMENT_KEY])["format"] == "automl-meta-artifact"


def test_classification_round_trip(classification_artifact, tmp_path):
    loaded = am.load(classification_artifact.save(tmp_path / "c.ameta"))
    r = np.random.default_rng(0)
    X, y = r.normal(size=(12, 4)), np.arange(12) % 3
    proba = loaded.adapt(X, y, steps=2).predict_proba(X)
    assert proba.shape == (12, 3) and np.allclose(proba.sum(1), 1)
    np.testing.assert_array_equal(proba, classification_artifact.adapt(X, y, steps=2).predict_proba(X))
    # Fewer classes and features than the model has: padded, and predictions stay within the task's classes.
    pred = loaded.adapt(X[:, :2], y % 2).predict(X[:, :2])
    assert set(pred) <= {0, 1}


def test_adapt_refuses_data_the_model_cannot_serve(classification_artifact):
    r = np.random.default_rng(0)
    with pytest.raises(am.TaskError, match="5 features but this learner's model takes at most 4"):
        classification_artifact.adapt(r.normal(size=(8, 5)), np.arange(8) % 2)
    with pytest.raises(am.TaskError, match="4 classes but this learner's model has 3 outputs"):
        classification_artifact.adapt(r.normal(size=(8, 4)), np.arange(8) % 4)
    fitted = classification_artifact.adapt(r.normal(size=(8, 4)), np.arange(8) % 3)
    with pytest.raises(am.TaskError, match="X must have shape \\(n_samples, 4\\)"):
        fitted.predict(r.normal(size=(3, 2)))


def rewrite(src, dst, edit_tensors=None, edit_manifest=None):
    tensors, manifest = tensorfile.read(src)
    if edit_tensors:
        edit_tensors(tensors)
    if edit_manifest:
        edit_manifest(manifest)
    tensorfile.write(dst, tensors, manifest)
    return dst


def write_bytes(p, data):
    p.write_bytes(data)
    return p


def bump(tensors):
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1e-3


@pytest.mark.parametrize(
    "make_bad, message",
    [
        (lambda good, p: write_bytes(p, good.read_bytes()[: good.stat().st_size // 2]), "corrupt or truncated"),
        (lambda good, p: write_bytes(p, np.random.default_rng(0).bytes(500)), "corrupt or truncated"),
        (lambda good, p: rewrite(good, p, edit_tensors=bump), "failed its integrity check"),
        (
            lambda good, p: rewrite(good, p, edit_manifest=lambda m: m.update(format_version=99)),
            "format version 99.*Upgrade automl-meta",
        ),
        (
            lambda good, p: rewrite(good, p, edit_manifest=lambda m: m.update(format="something-else")),
            "not an automl-meta artifact",
        ),
        (
            lambda good, p: rewrite(good, p, edit_manifest=lambda m: m["learner"].update(name="hypernet")),
            "cannot build: Unknown learner 'hypernet'",
        ),
        (
            lambda good, p: rewrite(good, p, edit_manifest=lambda m: m["learner"]["model"].update(hidden_sizes=[9])),
            "does not match its learner's architecture",
        ),
        (
            lambda good, p: rewrite(good, p, edit_manifest=lambda m: m.update(learner=["MAML"])),
            "field 'learner' must be a JSON object",
        ),
    ],
)
def test_bad_files_are_refused(regression_artifact, tmp_path, make_bad, message):
    good = regression_artifact.save(tmp_path / "good.ameta")
    bad = make_bad(good, tmp_path / "bad.ameta")
    with pytest.raises(ArtifactError, match=message) as info:
        am.load(bad)
    assert "bad.ameta" in str(info.value)
    am.load(good)  # the good file is untouched


def test_wrong_shape_with_consistent_hash_is_refused(regression_artifact, tmp_path):
    tensors, manifest = tensorfile.read(regression_artifact.save(tmp_path / "good.ameta"))
    name = "model.layers.0.weight"
    tensors[name] = torch.zeros(3, 3)
    manifest["tensors_sha256"] = tensorfile.tensors_sha256(tensors)
    tensorfile.write(tmp_path / "shape.ameta", tensors, manifest)
    with pytest.raises(ArtifactError, match="shape.ameta.*does not match its learner's architecture"):
        am.load(tmp_path / "shape.ameta")


@pytest.mark.parametrize("dtype", [torch.int64, torch.float16])
def test_tensors_of_another_dtype_are_refused(regression_artifact, tmp_path, dtype):
    tensors, manifest = tensorfile.read(regression_artifact.save(tmp_path / "good.ameta"))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].to(dtype)
    manifest["tensors_sha256"] = tensorfile.tensors_sha256(tensors)
    tensorfile.write(tmp_path / "dtype.ameta", tensors, manifest)
    with pytest.raises(ArtifactError, match="dtype.ameta.*share one floating dtype"):
        am.load(tmp_path / "dtype.ameta")


def test_safetensors_file_without_our_header_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ArtifactError, match="plain.safetensors.*not an automl-meta artifact"):
        am.load(tmp_path / "plain.safetensors")


def test_missing_file_and_unknown_name_list_the_bundled_artifacts(tmp_path):
    with pytest.raises(ArtifactError, match="No artifact file at .*nothing.ameta"):
        am.load(tmp_path / "nothing.ameta")
    with pytest.raises(ArtifactError, match="bundled artifacts: "):
        am.load("default-nothing")


def test_failed_save_keeps_the_previous_file(regression_artifact, classification_artifact, tmp_path, monkeypatch):
    path = regression_artifact.save(tmp_path / "keep.ameta")
    before = path.read_bytes()

    def broken(filename, data):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(tensorfile, "_write_new_file", broken)
    with pytest.raises(OSError, match="disk full"):
        classification_artifact.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.ameta"]
    monkeypatch.undo()
    assert am.load(path).manifest == regression_artifact.manifest
