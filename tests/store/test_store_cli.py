"""``automl-meta store upgrade`` and ``automl-meta store import-optuna``."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from automl_meta.cli import main
from automl_meta.store import METAFEATURES_ATTR, ExperienceStore, TaskDescription
from automl_meta.store.store import _engine, _migrate

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_upgrade_creates_and_upgrades(sqlite_url, capsys):
    assert main(["store", "upgrade", sqlite_url]) == 0
    assert "upgraded from an empty database to revision 0003" in capsys.readouterr().out
    assert main(["store", "upgrade", sqlite_url]) == 0
    assert "already at revision 0003" in capsys.readouterr().out


def test_upgrade_of_an_older_store(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = _engine(url, None)
    _migrate(engine, "0001")
    engine.dispose()
    assert main(["store", "upgrade", url]) == 0
    assert "from 0001 to revision 0003" in capsys.readouterr().out
    assert ExperienceStore(url).revision == "0003"


def test_upgrade_of_the_default_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUTOML_META_STORE", f"sqlite:///{tmp_path / 'default.db'}")
    assert main(["store", "upgrade"]) == 0
    assert "default.db" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["store", "upgrade", "mongodb://x/y"], "Unknown store URL scheme"),
        (["store", "upgrade", "postgresql://u@127.0.0.1:1/x"], "Cannot reach the store database"),
        (
            ["store", "import-optuna", "sqlite:///{tmp}/none.db", "--study", "nope", "--store", "sqlite:///{tmp}/s.db"],
            "none.db': the file does not exist",
        ),
        (
            ["store", "import-optuna", "sqlite:///{tmp}/none.db", "--data", "x.csv", "--store", "sqlite:///{tmp}/s.db"],
            "--data and --target go together",
        ),
    ],
)
def test_errors_without_traceback(args, message, tmp_path, capsys):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_import_optuna_by_user_attribute_and_by_data(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    store_url = f"sqlite:///{tmp_path / 'experience.db'}"
    X, y = load_iris(return_X_y=True)
    labelled = optuna.create_study(study_name="labelled", storage=storage)
    labelled.set_user_attr(METAFEATURES_ATTR, TaskDescription.from_data(X, y).metafeatures)
    labelled.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4)
    unlabelled = optuna.create_study(study_name="unlabelled", storage=storage, direction="maximize")
    unlabelled.optimize(lambda t: t.suggest_int("n", 0, 5), n_trials=3)
    unlabelled.ask()  # a running trial is not imported

    # Without data, the unlabelled study cannot be placed: a clear error naming the way out.
    assert main(["store", "import-optuna", storage, "--store", store_url]) == 2
    assert "--data FILE.csv --target COLUMN" in capsys.readouterr().err

    assert main(["store", "import-optuna", storage, "--study", "nope", "--store", store_url]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    assert main(["store", "import-optuna", storage, "--study", "labelled", "--store", store_url]) == 0
    assert "labelled: 4 trials imported, 0 already in the store" in capsys.readouterr().out
    csv = tmp_path / "iris.csv"
    pd.DataFrame(np.c_[X, y], columns=["a", "b", "c", "d", "species"]).to_csv(csv, index=False)
    assert (
        main(
            [
                "store",
                "import-optuna",
                storage,
                "--study",
                "unlabelled",
                "--store",
                store_url,
                "--data",
                str(csv),
                "--target",
                "species",
            ]
        )
        == 0
    )
    assert "unlabelled: 3 trials imported, 0 already in the store, 1 unfinished skipped" in capsys.readouterr().out
    # Importing again adds nothing.
    assert main(["store", "import-optuna", storage, "--study", "labelled", "--store", store_url]) == 0
    assert "0 trials imported, 4 already in the store" in capsys.readouterr().out

    store = ExperienceStore(store_url)
    assert store.count_evaluations(study="labelled") == 4 and store.count_evaluations(study="unlabelled") == 3
    assert [e.directions for e in store.evaluations(study="unlabelled")][0] == ["MAXIMIZE"]
    names = sorted(t.name for t in store.tasks())
    assert names == ["iris", "labelled"]


def test_import_of_a_missing_sqlite_storage_is_an_error(tmp_path, capsys):
    # It used to create an empty file and report success.
    missing = tmp_path / "typo.db"
    assert main(["store", "import-optuna", f"sqlite:///{missing}", "--store", f"sqlite:///{tmp_path / 's.db'}"]) == 2
    assert f"No Optuna storage at '{missing}': the file does not exist" in capsys.readouterr().err
    assert not missing.exists()


def test_import_tells_same_named_studies_apart_and_skips_recorded_ones(tmp_path, capsys):
    from automl_meta.integrations.optuna import ExperienceRecorder

    store_url = f"sqlite:///{tmp_path / 'experience.db'}"
    task = TaskDescription.from_data(*load_iris(return_X_y=True))
    storages = [f"sqlite:///{tmp_path / name}" for name in ("one.db", "two.db")]
    for storage in storages:  # the same study name in two storages: two studies
        study = optuna.create_study(study_name="my-study", storage=storage)
        study.set_user_attr(METAFEATURES_ATTR, task.metafeatures)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    for storage in storages:
        assert main(["store", "import-optuna", storage, "--store", store_url]) == 0
        assert "my-study: 3 trials imported, 0 already in the store" in capsys.readouterr().out
    assert main(["store", "import-optuna", storages[0], "--store", store_url]) == 0
    assert "my-study: 0 trials imported, 3 already in the store" in capsys.readouterr().out
    # A study the recorder recorded is recognised by import-optuna: nothing is added twice.
    recorded = f"sqlite:///{tmp_path / 'recorded.db'}"
    study = optuna.create_study(study_name="my-study", storage=recorded)
    study.optimize(
        lambda t: t.suggest_float("x", 0, 1),
        n_trials=4,
        callbacks=[ExperienceRecorder(store=store_url, task=task, spool_dir=tmp_path)],
    )
    assert main(["store", "import-optuna", recorded, "--store", store_url]) == 0
    assert "my-study: 0 trials imported, 4 already in the store" in capsys.readouterr().out
    assert ExperienceStore(store_url).count_evaluations(study="my-study") == 10
