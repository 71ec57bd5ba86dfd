"""The CLI on files it cannot read or write: a clear error and exit code 2, never a traceback or a lost artifact."""

from __future__ import annotations

import tempfile

import pytest

import automl_meta as am
from automl_meta.artifacts.artifact import MetaArtifact
from automl_meta.cli import main

CONFIG = """
seed = 1
output = "{out}"
[tasks]
family = "Sinusoid"
shots = 5
[learner]
name = "maml"
model = {{ name = "MLP", hidden_sizes = [8] }}
[trainer]
iterations = 4
eval_every = 2
n_validation_tasks = 4
verbose = 0
{checkpoint}
"""


def _config(tmp_path, out, checkpoint_dir=None):
    cfg = tmp_path / "run.toml"
    line = f'checkpoint_dir = "{checkpoint_dir}"' if checkpoint_dir is not None else ""
    cfg.write_text(CONFIG.format(out=out, checkpoint=line))
    return str(cfg)


def test_a_config_path_that_is_a_directory(tmp_path, capsys):
    assert main(["meta-train", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a directory, not a config file" in err and "Traceback" not in err


@pytest.mark.parametrize("where", ["under_a_file", "a_directory"])
def test_an_unwritable_output_is_refused_before_training(where, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    if where == "under_a_file":
        blocker.write_text("a file, so nothing can be created below it")
        out = blocker / "sine.ameta"
    else:
        blocker.mkdir()
        out = blocker
    runs = tmp_path / "runs"
    assert main(["meta-train", _config(tmp_path, out, runs)]) == 2
    err = capsys.readouterr().err
    assert f"'{out}'" in err and ("Nothing was trained" in err or "is a directory" in err)
    assert not runs.exists()  # refused before the trainer started


@pytest.mark.parametrize("with_checkpoints", [True, False])
def test_a_failed_final_save_keeps_the_trained_artifact(with_checkpoints, tmp_path, capsys, monkeypatch):
    out = tmp_path / "sine.ameta"
    runs = tmp_path / "runs" if with_checkpoints else None
    save = MetaArtifact.save

    def failing_save(self, path):  # the disk fills up at the very end, after the writability check
        if str(path) == str(out):
            raise OSError(28, "No space left on device")
        return save(self, path)

    monkeypatch.setattr(MetaArtifact, "save", failing_save)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where a run without checkpoints keeps it
    assert main(["meta-train", _config(tmp_path, out, runs)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and not out.exists()
    kept = err.split("It is kept at '")[1].split("'")[0]
    assert kept.startswith(str(runs) if with_checkpoints else str(tmp_path))
    artifact = am.load(kept)
    assert artifact.seed == 1 and artifact.training["iterations"] == 4


def test_store_upgrade_of_a_corrupt_database(tmp_path, capsys):
    db = tmp_path / "corrupt.db"
    db.write_bytes(b"this is not an SQLite database" * 200)
    assert main(["store", "upgrade", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err
    assert str(db) in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["../tests/conftest", "_report", "/etc/passwd", "sinusoid/../../tests/conftest"])
def test_studies_run_only_runs_the_checkouts_studies(name, capsys):
    assert main(["studies", "run", name]) == 2
    err = capsys.readouterr().err
    assert f"No study named {name!r}" in err and "sinusoid" in err
