"""The quick meta-dataset build records every trial of 6 tasks x 2 search spaces in its store, and resumes."""

from __future__ import annotations

import json
from pathlib import Path

from automl_meta.store import ExperienceStore


def test_quick_build_records_every_trial_and_resumes(run_quick_study):
    tmp_path = run_quick_study("build_meta_dataset")
    result = json.loads((tmp_path / "build_meta_dataset.json").read_text())
    assert result["quick"] is True and result["tasks"] == 6 and result["search_spaces"] == ["mlp", "hgb"]
    # 12 tuning trials per task and space, then each task runs the 3 best configurations of the 5 others.
    cross = 6 * 2 * 5 * 3
    assert result["evaluations"] == 6 * 2 * 12 + cross and result["stored_tasks"] == 6
    store = ExperienceStore(f"sqlite:///{tmp_path / 'runs' / 'build_meta_dataset' / 'experience.db'}")
    assert sorted(t.name for t in store.tasks()) == ["clf01", "clf06", "diabetes", "iris", "reg01", "wine"]
    assert len(store.search_spaces()) == 2
    assert all(e.values is not None and 0 <= e.values[0] for e in store.evaluations(states=["COMPLETE"]))
    lines = (tmp_path / "build_meta_dataset.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 12
    assert (tmp_path / "build_meta_dataset.png").stat().st_size > 5_000
    # A second run finds every study complete: nothing is added twice.
    run_quick_study("build_meta_dataset")
    assert ExperienceStore(store.url).count_evaluations() == 6 * 2 * 12 + cross
    runs = [e for e in store.evaluations() if e.study == "cross-hgb-iris-on-wine"]
    best_on_iris = sorted((e for e in store.evaluations(study="meta-iris-hgb") if e.values), key=lambda e: e.values[0])[
        :3
    ]
    assert [e.params for e in runs] == [e.params for e in best_on_iris]


def test_derived_from_names_every_study_that_used_a_task(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "studies"))
    from build_meta_dataset import derived_from

    assert derived_from("meta-iris-hgb", "iris") and derived_from("cross-mlp-iris-on-wine", "iris")
    assert derived_from("cross-mlp-wine-on-iris", "iris")
    assert not derived_from("cross-mlp-wine-on-clf01", "iris") and not derived_from("meta-wine-mlp", "iris")
    assert not derived_from("cross-mlp-clf01-on-wine", "clf0")


def test_objective_is_the_mean_loss_over_folds_that_partition_the_rows(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "studies"))
    import numpy as np
    from _hpo_tasks import FOLDS, evaluate, load_data, load_folds, train_hgb

    X, y, task_type = load_data("wine")
    folds = load_folds("wine")
    assert task_type == "classification" and len(folds) == FOLDS
    # Every row is validated exactly once: the validation folds together hold each row's label once.
    assert sum(len(f.yva) for f in folds) == len(y)
    assert np.array_equal(np.sort(np.concatenate([f.yva for f in folds])), np.sort(y))
    # Stratified: every class appears in every fold's validation rows, and the losses are over all classes.
    assert all(set(np.unique(f.yva)) == set(np.unique(y)) and f.n_classes == 3 for f in folds)
    # Standardised on each fold's own training rows.
    assert all(np.allclose(f.Xtr.mean(0), 0, atol=1e-9) and not np.allclose(f.Xva.mean(0), 0, atol=1e-9) for f in folds)
    params = {"learning_rate": 0.2, "max_leaf_nodes": 8, "min_samples_leaf": 5, "l2_regularization": 0.1}
    per_fold = [train_hgb(f, params) for f in folds]
    assert evaluate("wine", "hgb", params) == np.mean(per_fold) and len(set(per_fold)) == FOLDS
