"""The knowledge build: real runs on a corpus task, resumed after a crash, packed into a readable file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from automl_meta import knowledge
from automl_meta.knowledge._build import BuildSettings, build, build_cross, design, runs_path
from automl_meta.knowledge._cross import cross_path, medoids
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


def test_medoids_are_points_of_each_cluster_and_the_same_every_time():
    rng = np.random.default_rng(0)
    centres = np.array([[0.1, 0.1], [0.9, 0.2], [0.5, 0.9]])
    points = np.concatenate([c + 0.02 * rng.standard_normal((10, 2)) for c in centres])
    chosen = medoids(points, 3)
    assert chosen == medoids(points, 3)
    # One medoid per cluster, each among the more central half of its cluster.
    assert sorted(i // 10 for i in chosen) == [0, 1, 2]
    for i in chosen:
        members = points[10 * (i // 10) : 10 * (i // 10 + 1)]
        assert np.linalg.norm(points[i] - members.mean(0)) <= np.quantile(
            np.linalg.norm(members - members.mean(0), axis=1), 0.5
        )
    assert medoids(points[:2], 5) == [0, 1]  # fewer points than asked: every point


def test_the_cross_round_runs_the_same_configurations_on_every_task_and_packs_them(tmp_path):
    settings = BuildSettings(n_design=1, n_tuned=1, max_rows=100, max_tasks=2)
    out = tmp_path / "runs"
    with pytest.raises(ValueError, match="not finished"):
        build_cross(out, settings, 2, jobs=1, progress=False)
    tuned_runs = build(out, settings, jobs=1, progress=False)
    assert build_cross(out, settings, 2, jobs=1, progress=False) == tuned_runs  # every (space, task) again
    assert build_cross(out, settings, 2, jobs=1, progress=False) == 0  # resumes: nothing left
    with pytest.raises(ValueError, match="runs 2 configurations"):
        build_cross(out, settings, 3, jobs=1, progress=False)
    for tt in ESTIMATORS:
        path = cross_path(out, tt, "k_neighbors")
        if not path.exists():
            continue
        records = [json.loads(line) for line in path.read_text().splitlines()]
        tuned = [json.loads(line) for line in runs_path(out, tt, "k_neighbors").read_text().splitlines()]
        assert len(records) == len(tuned)  # every task of the type
        assert all(r["configs"] == records[0]["configs"] for r in records) and len(records[0]["configs"]) <= 2
        # The configurations are tasks' best ones from the tuning round.
        bests = [r["configs"][int(np.nanargmin([np.nan if v is None else v for v in r["losses"]]))] for r in tuned]
        assert all(c in bests for c in records[0]["configs"])
        _, manifest = pack(out, tmp_path / "file", "t")
        kb = knowledge.load(manifest)
        block = kb.block("k_neighbors", tt)
        runs = block.runs()
        measured = [{json.dumps(block.config(i), sort_keys=True) for i in runs[t][0]} for t in runs]
        for config in records[0]["configs"]:
            assert all(json.dumps(config, sort_keys=True) in m for m in measured)  # measured on every task
        assert kb.manifest["settings"]["n_cross"] == 2 and kb.manifest["cross_runs"] > 0
