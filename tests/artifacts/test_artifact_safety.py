"""Crafted or damaged artifact files cannot exhaust memory, crash with raw errors, or pose as bundled ones."""

from __future__ import annotations

import contextlib
import json
import os
import time

import pytest

import automl_meta as am
from automl_meta import ArtifactError
from automl_meta.artifacts import registry, tensorfile
from automl_meta.cli import main


@contextlib.contextmanager
def memory_guard(extra_bytes: int = 1_500_000_000):
    """Cap this process's address space a little above its current size (Linux), so that code that tries to
    allocate a crafted architecture fails at once instead of exhausting the machine."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError, ValueError):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = used + extra_bytes if hard == resource.RLIM_INFINITY else min(used + extra_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def mlp_artifact():
    return am.MetaArtifact(am.learners.MetaSGD(am.models.MLP([8])).setup("regression", 1, 1))


def tabular_artifact():
    model = am.models.TabularNet(hidden=8, depth=1, max_features=4, max_outputs=2)
    return am.MetaArtifact(am.learners.MAML(model).setup("classification", 4, 2))


def crafted(path, artifact, edit):
    tensors, manifest = artifact.tensors(), artifact.manifest
    edit(manifest["learner"])
    tensorfile.write(path, tensors, manifest)  # tensors and their sha256 untouched: only the architecture lies
    return path


def lstm_rule(learner):
    learner.clear()
    learner.update(name="lstm_optimizer", hidden_size=4, num_layers=10**6, meta_learns=["update_rule"])


def mlp_rule(learner):
    learner.clear()
    learner.update(name="mlp_optimizer", hidden_sizes=[10**6, 10**6], meta_learns=["update_rule"])


@pytest.mark.parametrize(
    "make, edit",
    [
        (mlp_artifact, lambda c: c["model"].update(hidden_sizes=[200_000, 200_000])),
        (mlp_artifact, lambda c: c["model"].update(hidden_sizes=[64] * 100_000)),
        (tabular_artifact, lambda c: c["model"].update(hidden=200_000, depth=10**6)),
        (tabular_artifact, lambda c: c["model"].update(depth=10**6)),
        (lambda: am.load("default-l2o"), lambda c: c.update(hidden_size=200_000)),
        (lambda: am.load("default-l2o"), lstm_rule),
        (lambda: am.load("default-l2o"), mlp_rule),
    ],
    ids=[
        "mlp-wide",
        "mlp-deep",
        "tabular-wide-deep",
        "tabular-deep",
        "hyper-controller-wide",
        "lstm-rule-deep",
        "mlp-rule-wide",
    ],
)
def test_crafted_architecture_is_refused_before_anything_is_allocated(tmp_path, make, edit):
    path = crafted(tmp_path / "crafted.ameta", make(), edit)
    start = time.perf_counter()
    with memory_guard(), pytest.raises(ArtifactError, match="crafted.ameta.*does not match its learner's architecture"):
        am.load(path)
    assert time.perf_counter() - start < 20  # generous: the refusal takes milliseconds


def test_architecture_is_checked_before_tensors_are_loaded(tmp_path, monkeypatch):
    path = crafted(tmp_path / "crafted.ameta", tabular_artifact(), lambda c: c["model"].update(hidden=9))
    loaded = []
    real_open = tensorfile.safe_open

    class Spy:
        def __init__(self, *args, **kwargs):
            self.handle = real_open(*args, **kwargs)

        def __enter__(self):
            self.inner = self.handle.__enter__()
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

        def get_tensor(self, name):
            loaded.append(name)
            return self.inner.get_tensor(name)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(tensorfile, "safe_open", Spy)
    with pytest.raises(ArtifactError, match="does not match its learner's architecture"):
        am.load(path)
    assert loaded == []


@pytest.mark.parametrize(
    "field, value",
    [
        ("metrics", "x"),
        ("task_family", [1, 2]),
        ("training", None),
        ("format_version", -5),
        ("format_version", 0),
        ("format_version", True),
        ("format_version", "1"),
        ("seed", True),
        ("seed", 1.5),
        ("versions", {"torch": 2}),
        ("created", 20240101),
        ("tensors_sha256", 12),
        ("learner", {"name": "metasgd"}),
        ("learner", {"name": 3, "meta_learns": []}),
    ],
)
def test_manifest_field_of_the_wrong_type_is_refused_by_name(tmp_path, field, value):
    artifact = mlp_artifact()
    manifest = {**artifact.manifest, field: value}
    tensorfile.write(tmp_path / "bad.ameta", artifact.tensors(), manifest)
    with pytest.raises(ArtifactError, match=f"bad.ameta.*invalid manifest: field '{field}' must be"):
        am.load(tmp_path / "bad.ameta")


@pytest.mark.parametrize("field", ["metrics", "training", "versions", "created", "tensors_sha256", "seed"])
def test_manifest_without_a_field_is_refused_by_name(tmp_path, field):
    artifact = mlp_artifact()
    manifest = {k: v for k, v in artifact.manifest.items() if k != field}
    tensorfile.write(tmp_path / "bad.ameta", artifact.tensors(), manifest)
    with pytest.raises(ArtifactError, match=f"bad.ameta.*invalid manifest: field '{field}' is missing"):
        am.load(tmp_path / "bad.ameta")


def test_huge_manifest_is_refused_before_it_is_parsed(tmp_path):
    artifact = mlp_artifact()
    manifest = {**artifact.manifest, "training": {"padding": [0] * 600_000}}
    tensorfile.write(tmp_path / "big.ameta", artifact.tensors(), manifest)
    with pytest.raises(ArtifactError, match="big.ameta.*header of .* characters"):
        am.load(tmp_path / "big.ameta")


def test_pickled_artifact_with_a_bad_manifest_is_refused():
    state = mlp_artifact().__getstate__()
    state["manifest"]["metrics"] = "x"
    with pytest.raises(ArtifactError, match="field 'metrics'"):
        am.MetaArtifact.__new__(am.MetaArtifact).__setstate__(state)


def test_bundled_name_means_the_packaged_file_even_when_the_working_folder_has_one(tmp_path, monkeypatch, capsys):
    name = "default-tabular-classification"
    monkeypatch.chdir(tmp_path)
    impostor = mlp_artifact()
    impostor.save(tmp_path / name)
    bundled_sha = tensorfile.read(registry.BUNDLED_DIR / f"{name}.ameta")[1]["tensors_sha256"]

    with pytest.warns(UserWarning, match=f"'{name}' is the name of a bundled artifact.*'./{name}'"):
        loaded = am.load(name)
    assert loaded.manifest["tensors_sha256"] == bundled_sha
    assert loaded.learner.model.get_config()["name"] == "TabularNet"
    local = am.load(f"./{name}")
    assert local.manifest["tensors_sha256"] == impostor.manifest["tensors_sha256"]
    assert registry.locate(f"./{name}")[1] is None

    capsys.readouterr()
    with pytest.warns(UserWarning):
        assert main(["inspect", name]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["tensors_sha256"] == bundled_sha
    assert f"bundled artifact '{name}'" in out.err
    assert main(["inspect", f"./{name}"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["tensors_sha256"] == impostor.manifest["tensors_sha256"]
    assert f"file '{tmp_path / name}'" in out.err and "bundled artifact" not in out.err


def test_inspect_names_the_file_it_read(tmp_path, capsys):
    path = mlp_artifact().save(tmp_path / "mine.ameta")
    assert main(["inspect", str(path)]) == 0
    assert f"file '{path.resolve()}'" in capsys.readouterr().err
