"""The knowledge build: real runs on a corpus task, resumed after a crash, packed into a readable file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from automl_meta import knowledge
from automl_meta.knowledge._build import BuildSettings, build, build_cross, design, runs_path
from automl_meta.knowledge._cross import cross_path, medoids
from automl_meta.knowledge._deepen import build_more, more_path
from automl_meta.knowledge._objective import ESTIMATORS, default_config
from automl_meta.knowledge._pack import pack
from automl_meta.spaces import SPACES


def test_the_design_starts_at_scikit_learns_defaults_and_is_the_same_every_time():
    for name in SPACES:
        configs = design(name, 5)
        assert configs[0] == default_config(SPACES[name]) and configs == design(name, 5)
        assert len({json.dumps(c, sort_keys=True) for c in configs}) == 5


def test_a_build_runs_every_space_resumes_packs_and_cross_evaluates(tmp_path):
    settings = BuildSettings(n_design=1, n_tuned=1, max_rows=100, max_tasks=2)
    out = tmp_path / "runs"
    with pytest.raises(ValueError, match="not finished"):
        build_cross(out, settings, 2, jobs=1, progress=False)
    tuned_runs = build(out, settings, jobs=1, progress=False)
    assert tuned_runs == 16  # 2 tasks, 8 spaces for either task type
    task_type = next(t for t in ESTIMATORS if runs_path(out, t, "k_neighbors").exists())
    path = runs_path(out, task_type, "k_neighbors")
    record = json.loads(path.read_text().splitlines()[0])
    assert len(record["configs"]) == 2 and all(v is None or np.isfinite(v) for v in record["losses"])
    # A crash in the middle of a line: the build drops the cut line and runs that (space, task) again.
    path.write_text(path.read_text()[:-20])
    assert build(out, settings, jobs=1, progress=False) == 1
    assert build(out, settings, jobs=1, progress=False) == 0
    with pytest.raises(ValueError, match="other settings"):  # never mix runs of two budgets in one folder
        build(out, BuildSettings(n_design=2, n_tuned=1, max_rows=100, max_tasks=2), jobs=1, progress=False)

    # The cross round: the same configurations, tasks' best ones, on every (space, task); resumable.
    assert build_cross(out, settings, 2, jobs=1, progress=False) == tuned_runs
    assert build_cross(out, settings, 2, jobs=1, progress=False) == 0
    with pytest.raises(ValueError, match="runs 2 configurations"):
        build_cross(out, settings, 3, jobs=1, progress=False)
    tuned = [json.loads(line) for line in path.read_text().splitlines()]
    crossed = [json.loads(line) for line in cross_path(out, task_type, "k_neighbors").read_text().splitlines()]
    assert sorted(r["task"] for r in crossed) == sorted(r["task"] for r in tuned)
    assert all(r["configs"] == crossed[0]["configs"] for r in crossed) and 1 <= len(crossed[0]["configs"]) <= 2
    bests = [r["configs"][int(np.nanargmin([np.nan if v is None else v for v in r["losses"]]))] for r in tuned]
    assert all(c in bests for c in crossed[0]["configs"])

    npz, manifest = pack(out, tmp_path / "file", "t")
    kb = knowledge.load(manifest)
    first_sha = kb.manifest["sha256"]
    assert [t["name"] for t in kb.tasks] == sorted({*(r["task"] for r in tuned), *(t["name"] for t in kb.tasks)})
    assert {b.space for b in kb.blocks} >= set(ESTIMATORS[task_type])
    assert kb.manifest["settings"]["n_cross"] == 2 and kb.manifest["cross_runs"] == tuned_runs
    block = kb.block("k_neighbors", task_type)
    runs = block.runs()
    index = {t["name"]: i for i, t in enumerate(kb.tasks)}
    for r in tuned:  # each task's runs: its tuning run (failed fits left out), then the cross-evaluations it lacked
        mine = [json.dumps(block.config(i), sort_keys=True) for i in runs[index[r["task"]]][0]]
        finished = [json.dumps(c, sort_keys=True) for c, v in zip(r["configs"], r["losses"]) if v is not None]
        assert mine[: len(finished)] == finished
        assert {json.dumps(c, sort_keys=True) for c in crossed[0]["configs"]} <= set(mine)  # measured everywhere

    # The deepening round: more TPE trials per run, after the others; resumable, one number per folder.
    assert build_more(out, settings, 2, jobs=1, progress=False) == tuned_runs
    assert build_more(out, settings, 2, jobs=1, progress=False) == 0
    with pytest.raises(ValueError, match="runs 2 more trials"):
        build_more(out, settings, 3, jobs=1, progress=False)
    deeper = {r["task"]: r for r in map(json.loads, more_path(out, task_type, "k_neighbors").read_text().splitlines())}
    assert sorted(deeper) == sorted(r["task"] for r in tuned) and all(len(r["configs"]) == 2 for r in deeper.values())
    kb = knowledge.load(pack(out, tmp_path / "deeper", "t")[1])
    assert kb.manifest["settings"]["n_more"] == 2 and kb.manifest["more_runs"] == tuned_runs
    deeper_runs = kb.block("k_neighbors", task_type).runs()
    for r in tuned:  # each task's runs gained its deepening trials (new configurations; failed fits left out)
        finished = sum(v is not None for v in deeper[r["task"]]["losses"])
        assert len(deeper_runs[index[r["task"]]][0]) == len(runs[index[r["task"]]][0]) + finished
    # Left out on request: the file is the one packed before the round, byte for byte.
    without = knowledge.load(pack(out, tmp_path / "without", "t", deepened=False)[1])
    assert without.manifest["sha256"] == first_sha and without.manifest["more_runs"] == 0
    assert without.manifest["settings"]["n_more"] == 0


def test_the_deepening_round_waits_for_the_tuning_round(tmp_path):
    with pytest.raises(ValueError, match="not finished"):
        build_more(tmp_path, BuildSettings(n_design=1, n_tuned=1, max_rows=100, max_tasks=1), 2, progress=False)


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
