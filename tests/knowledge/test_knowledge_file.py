"""The knowledge file: what ships in the package, its format, its checks, and the build that makes it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from automl_meta import knowledge
from automl_meta.corpus import split_of
from automl_meta.exceptions import KnowledgeError
from automl_meta.integrations.optuna._search_space import _contains
from automl_meta.knowledge._objective import ESTIMATORS
from automl_meta.metafeatures import NAMES
from automl_meta.spaces import SPACES


@pytest.fixture(scope="module")
def bundled():
    return knowledge.load()


def test_the_bundled_file_is_small_and_states_its_provenance(bundled):
    manifest_path = knowledge.bundled_path()
    assert manifest_path.with_suffix(".npz").stat().st_size + manifest_path.stat().st_size <= 20e6
    manifest = bundled.manifest
    assert manifest["version"] == knowledge.BUNDLED_VERSION
    assert {"created", "settings", "objective", "versions", "corpus", "sha256"} <= set(manifest)
    assert "scikit-learn" in manifest["versions"] and manifest["corpus"]["rules_version"]
    assert all({"name", "task_type", "fingerprint", "rows"} <= set(t) for t in bundled.tasks)


def test_the_bundled_file_holds_meta_training_tasks_only(bundled):
    assert bundled.tasks
    assert all(split_of(t["name"]) == "meta-train" for t in bundled.tasks)


def test_every_block_is_a_known_space_with_its_distributions_and_finite_results(bundled):
    assert bundled.metafeatures.shape == (len(bundled.tasks), len(NAMES))
    assert np.isfinite(bundled.metafeatures).all()
    types = {t["task_type"] for t in bundled.tasks}
    for task_type in types:  # every space of a type that has tasks
        for space in ESTIMATORS[task_type]:
            block = bundled.block(space, task_type)
            assert block is not None, (space, task_type)
            assert block.distributions == SPACES[space].distributions()
            runs = block.runs()
            assert runs and all(len(rows) >= 2 for rows, _ in runs.values())
            assert all(bundled.tasks[t]["task_type"] == task_type for t in runs)
            # every stored configuration decodes into the space and is one its suggest() can produce
            for i in range(len(block.configs)):
                config = block.config(i)
                assert set(config) <= SPACES[space].active(config)
                assert all(_contains(block.distributions[n], v) for n, v in config.items())


def _copy(folder):
    folder.mkdir(exist_ok=True)
    src = knowledge.bundled_path()
    dst = folder / src.name
    dst.write_bytes(src.read_bytes())
    dst.with_suffix(".npz").write_bytes(src.with_suffix(".npz").read_bytes())
    return dst


def test_a_damaged_missing_or_foreign_file_is_a_knowledge_error(tmp_path):
    path = _copy(tmp_path)
    assert knowledge.load(path).version == knowledge.BUNDLED_VERSION
    data = bytearray(path.with_suffix(".npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.with_suffix(".npz").write_bytes(bytes(data))
    with pytest.raises(KnowledgeError, match="damaged"):
        knowledge.load(path)
    path.with_suffix(".npz").unlink()
    with pytest.raises(KnowledgeError, match="Cannot read"):
        knowledge.load(path)
    other = _copy(tmp_path / "other")
    manifest = json.loads(other.read_text())
    other.write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(KnowledgeError, match="format 99"):
        knowledge.load(other)


def test_write_and_read_round_trip(tmp_path, bundled):
    from automl_meta.knowledge._file import write

    npz, manifest = write(bundled, tmp_path, "test")
    again = knowledge.load(manifest)
    assert again.tasks == bundled.tasks and np.array_equal(again.metafeatures, bundled.metafeatures)
    for a, b in zip(again.blocks, bundled.blocks):
        assert (a.space, a.task_type, a.distributions) == (b.space, b.task_type, b.distributions)
        assert np.array_equal(a.configs, b.configs, equal_nan=True) and np.array_equal(a.loss, b.loss, equal_nan=True)
        assert [a.config(i) for i in range(len(a.configs))] == [b.config(i) for i in range(len(b.configs))]
