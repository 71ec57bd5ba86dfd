"""The knowledge build: real runs on a corpus task, resumed after a crash, packed into a readable file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from automl_meta import knowledge
from automl_meta.knowledge._build import BuildSettings, build, design, runs_path
from automl_meta.knowledge._objective import ESTIMATORS, default_config
from automl_meta.knowledge._pack import pack
from automl_meta.spaces import SPACES


def test_the_design_starts_at_scikit_learns_defaults_and_is_the_same_every_time():
    for name in SPACES:
        configs = design(name, 5)
        assert configs[0] == default_config(SPACES[name]) and configs == design(name, 5)
        assert len({json.dumps(c, sort_keys=True) for c in configs}) == 5


def test_a_build_runs_every_space_resumes_and_packs(tmp_path):
    settings = BuildSettings(n_design=2, n_tuned=1, max_rows=120, max_tasks=1)
    out = tmp_path / "runs"
    assert build(out, settings, jobs=1, progress=False) == 8  # the first task's type has 8 spaces
    (task_type,) = [t for t in ESTIMATORS if runs_path(out, t, "k_neighbors").exists()]
    path = runs_path(out, task_type, "k_neighbors")
    record = json.loads(path.read_text())
    assert len(record["configs"]) == 3 and all(v is None or np.isfinite(v) for v in record["losses"])
    # A crash in the middle of a line: the build drops the cut line and runs that (space, task) again.
    path.write_text(path.read_text()[:-20])
    assert build(out, settings, jobs=1, progress=False) == 1
    assert build(out, settings, jobs=1, progress=False) == 0
    with pytest.raises(ValueError, match="other settings"):  # never mix runs of two budgets in one folder
        build(out, BuildSettings(n_design=3, n_tuned=1, max_rows=120, max_tasks=1), jobs=1, progress=False)
    npz, manifest = pack(out, tmp_path / "file", "t")
    kb = knowledge.load(manifest)
    assert [t["name"] for t in kb.tasks] == [record["task"]]
    assert {b.space for b in kb.blocks} == set(ESTIMATORS[task_type])
    block = kb.block("k_neighbors", task_type)
    record = json.loads(path.read_text())
    finished = [c for c, v in zip(record["configs"], record["losses"]) if v is not None]  # failed fits left out
    assert [block.config(i) for i in block.runs()[0][0]] == finished
